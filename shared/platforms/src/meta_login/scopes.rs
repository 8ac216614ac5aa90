//! What publishing needs from an Instagram or Threads grant. Instagram's Business Login asks
//! again with `force_reauth=true` (the parameter of the embed URL the App Dashboard generates);
//! Threads documents no such parameter, so a fresh authorization is how it asks again.

use crate::permissions::{Needed, Rule};

pub(crate) static INSTAGRAM: Rule = Rule {
    needs: &[
        Needed {
            scope: "instagram_business_basic",
            why: "to know which Instagram professional account you are",
        },
        Needed {
            scope: "instagram_business_content_publish",
            why: "to publish posts to your Instagram account",
        },
    ],
    ask_again: &[("force_reauth", "true")],
};

pub(crate) static THREADS: Rule = Rule {
    needs: &[
        Needed { scope: "threads_basic", why: "to know which Threads profile you are" },
        Needed {
            scope: "threads_content_publish",
            why: "to publish posts to your Threads profile",
        },
    ],
    ask_again: &[],
};
