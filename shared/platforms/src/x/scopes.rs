//! What publishing needs from an X grant. X's consent screen has no per-scope choice, so there
//! is nothing to ask again for; the rule still guards against a grant that lists fewer scopes.

use crate::permissions::{Needed, Rule};

pub(crate) static RULE: Rule = Rule {
    needs: &[
        Needed { scope: "users.read", why: "to know which X account you are" },
        Needed { scope: "tweet.write", why: "to publish posts as you" },
    ],
    ask_again: &[],
};
