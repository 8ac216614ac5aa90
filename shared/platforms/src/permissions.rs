//! What publishing needs from a grant, per platform: the permissions (scopes) a user may untick
//! on the consent screen and without which every post would fail later, and how to ask the
//! platform to show them again. The rules live with each connector (`<platform>/scopes.rs`);
//! this module only finds the right one.

use lifeline_kit::Platform;

/// A permission publishing needs, and why, in words for the person who unticked it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needed {
    pub scope: &'static str,
    pub why: &'static str,
}

/// One platform's rule.
pub(crate) struct Rule {
    pub needs: &'static [Needed],
    /// Query parameters that make the platform ask again for permissions the user declined.
    pub ask_again: &'static [(&'static str, &'static str)],
}

fn rule(platform: Platform) -> &'static Rule {
    match platform {
        Platform::X => &crate::x::scopes::RULE,
        Platform::LinkedIn => &crate::linkedin::scopes::RULE,
        Platform::Instagram => &crate::meta_login::scopes::INSTAGRAM,
        Platform::Threads => &crate::meta_login::scopes::THREADS,
        Platform::Facebook => &crate::facebook::scopes::RULE,
        Platform::YouTube => &crate::youtube::scopes::RULE,
        Platform::TikTok => &crate::tiktok::scopes::RULE,
    }
}

/// Every permission publishing on `platform` needs.
pub fn publishing_needs(platform: Platform) -> &'static [Needed] {
    rule(platform).needs
}

/// The permissions publishing needs that `granted` lacks, in the rule's order.
pub fn missing_for_publishing(platform: Platform, granted: &[String]) -> Vec<Needed> {
    rule(platform).needs.iter().filter(|n| !granted.iter().any(|g| g == n.scope)).copied().collect()
}

/// Turns an authorize URL into one that asks again for declined permissions (Facebook's
/// `auth_type=rerequest` and each platform's equivalent). Parameters already present are
/// replaced, not repeated.
pub fn ask_again(platform: Platform, url: &mut url::Url) {
    let extra = rule(platform).ask_again;
    if extra.is_empty() {
        return;
    }
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut().clear().extend_pairs(kept).extend_pairs(extra.iter().copied());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> [Platform; 7] {
        [
            Platform::X,
            Platform::LinkedIn,
            Platform::Instagram,
            Platform::Threads,
            Platform::Facebook,
            Platform::YouTube,
            Platform::TikTok,
        ]
    }

    #[test]
    fn every_platform_needs_something_and_says_why() {
        for p in all() {
            let needs = publishing_needs(p);
            assert!(!needs.is_empty(), "{p}");
            assert!(needs.iter().all(|n| !n.scope.is_empty() && n.why.len() > 10), "{p}");
        }
    }

    #[test]
    fn a_full_grant_misses_nothing_and_an_unticked_scope_is_named() {
        for p in all() {
            let needs = publishing_needs(p);
            let full: Vec<String> = needs.iter().map(|n| n.scope.to_owned()).collect();
            assert!(missing_for_publishing(p, &full).is_empty(), "{p}");
            let without_last = &full[..full.len() - 1];
            let missing = missing_for_publishing(p, without_last);
            assert_eq!(missing, vec![needs[needs.len() - 1]], "{p}");
        }
    }

    #[test]
    fn ask_again_adds_the_platforms_parameter_once() {
        let mut url = url::Url::parse("https://www.facebook.com/v21.0/dialog/oauth?client_id=1&auth_type=reauthenticate&state=s").unwrap();
        ask_again(Platform::Facebook, &mut url);
        ask_again(Platform::Facebook, &mut url);
        let types: Vec<String> = url
            .query_pairs()
            .filter(|(k, _)| k == "auth_type")
            .map(|(_, v)| v.into_owned())
            .collect();
        assert_eq!(types, vec!["rerequest".to_owned()]);
        assert!(url.query_pairs().any(|(k, v)| k == "state" && v == "s"));

        let mut url = url::Url::parse("https://www.tiktok.com/v2/auth/authorize/?state=s").unwrap();
        ask_again(Platform::TikTok, &mut url);
        assert!(url.query_pairs().any(|(k, v)| k == "disable_auto_auth" && v == "1"));
    }
}
