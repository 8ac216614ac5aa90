//! What publishing needs from a TikTok grant, and how TikTok shows its authorization page again
//! to a user who already authorized the app (`disable_auto_auth=1`), so declined scopes can be
//! granted.

use crate::permissions::{Needed, Rule};

pub(crate) static RULE: Rule = Rule {
    needs: &[
        Needed { scope: "user.info.basic", why: "to know which TikTok account you are" },
        Needed { scope: "video.publish", why: "to publish videos to your TikTok account" },
    ],
    ask_again: &[("disable_auto_auth", "1")],
};
