//! What publishing needs from a Google grant. Google's granular consent lets a user untick a
//! scope; `prompt=consent` (which every authorization of this connector already sends) shows
//! the consent screen again, and `include_granted_scopes=true` keeps what was granted before.

use crate::permissions::{Needed, Rule};

pub(crate) static RULE: Rule = Rule {
    needs: &[
        Needed {
            scope: "https://www.googleapis.com/auth/youtube.upload",
            why: "to upload videos to your channel",
        },
        Needed {
            scope: "https://www.googleapis.com/auth/youtube.readonly",
            why: "to know your channel and check whether an upload went out",
        },
    ],
    ask_again: &[("prompt", "consent"), ("include_granted_scopes", "true")],
};
