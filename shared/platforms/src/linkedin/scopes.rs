//! What publishing needs from a LinkedIn grant. LinkedIn documents no parameter to ask again
//! for a declined permission: a fresh authorization shows the consent screen again whenever
//! the app's grant lacks a requested scope.

use crate::permissions::{Needed, Rule};

pub(crate) static RULE: Rule = Rule {
    needs: &[
        Needed {
            scope: "openid",
            why: "to know which LinkedIn member you are (posts are written as that member)",
        },
        Needed { scope: "w_member_social", why: "to publish posts as you" },
    ],
    ask_again: &[],
};
