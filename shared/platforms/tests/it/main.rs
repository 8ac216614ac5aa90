//! The connector layer's integration tests: documented answers classified as documented
//! ([`fixtures`]), and no classifier panicking or crying "auth" on garbage ([`robustness`]).
//! The contract tests against platform-sim are their own crate: `tests/contract`.

mod config;
mod fixtures;
mod robustness;

use lifeline_platforms::{facebook, instagram, linkedin, threads, tiktok, x, youtube, Failure};
use reqwest::{header::HeaderMap, StatusCode};

/// Which classifier a fixture or a random case goes through.
#[derive(Debug, Clone, Copy)]
pub enum Classifier {
    XApi,
    LinkedInApi,
    LinkedInToken,
    YouTubeApi,
    YouTubeToken,
    TikTokApi,
    TikTokToken,
    InstagramApi,
    InstagramToken,
    FacebookApi,
    FacebookToken,
    ThreadsApi,
    ThreadsToken,
}

impl Classifier {
    pub const ALL: [Classifier; 13] = [
        Classifier::XApi,
        Classifier::LinkedInApi,
        Classifier::LinkedInToken,
        Classifier::YouTubeApi,
        Classifier::YouTubeToken,
        Classifier::TikTokApi,
        Classifier::TikTokToken,
        Classifier::InstagramApi,
        Classifier::InstagramToken,
        Classifier::FacebookApi,
        Classifier::FacebookToken,
        Classifier::ThreadsApi,
        Classifier::ThreadsToken,
    ];

    pub fn for_fixture(platform: &str, call: &str) -> Classifier {
        match (platform, call) {
            ("x", "api") => Classifier::XApi,
            ("linkedin", "api") => Classifier::LinkedInApi,
            ("linkedin", "token") => Classifier::LinkedInToken,
            ("youtube", "api") => Classifier::YouTubeApi,
            ("youtube", "token") => Classifier::YouTubeToken,
            ("tiktok", "api") => Classifier::TikTokApi,
            ("tiktok", "token") => Classifier::TikTokToken,
            ("instagram", "api") => Classifier::InstagramApi,
            ("instagram", "token") => Classifier::InstagramToken,
            ("facebook", "api") => Classifier::FacebookApi,
            ("facebook", "token") => Classifier::FacebookToken,
            ("threads", "api") => Classifier::ThreadsApi,
            ("threads", "token") => Classifier::ThreadsToken,
            other => panic!("no classifier for {other:?}"),
        }
    }

    /// Classifies one answer. `mutating` doubles as TikTok's `rotating` for token calls.
    pub fn classify(
        self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        believed_expired: bool,
        mutating: bool,
    ) -> Failure {
        let (s, h, b, e, m) = (status, headers, body, believed_expired, mutating);
        match self {
            Classifier::XApi => x::classify_api(s, h, b, e),
            Classifier::LinkedInApi => linkedin::classify_api(s, h, b, e, m),
            // The oauth2 crate hands LinkedIn's and Google's error bodies over without the
            // status; those classifiers never see it.
            Classifier::LinkedInToken => linkedin::classify_token_body(b),
            Classifier::YouTubeApi => youtube::classify_api(s, h, b, e, m),
            Classifier::YouTubeToken => youtube::classify_token_body(b),
            Classifier::TikTokApi => tiktok::classify_api(s, h, b, e, m),
            Classifier::TikTokToken => tiktok::classify_token(s, h, b, m),
            Classifier::InstagramApi => instagram::classify_api(s, h, b, e, m),
            Classifier::InstagramToken => instagram::classify_token(s, h, b),
            Classifier::FacebookApi => facebook::classify_api(s, h, b, e, m),
            Classifier::FacebookToken => facebook::classify_token(s, h, b),
            Classifier::ThreadsApi => threads::classify_api(s, h, b, e, m),
            Classifier::ThreadsToken => threads::classify_token(s, h, b),
        }
    }

    /// Whether the classifier sees the status at all (see above).
    pub fn sees_status(self) -> bool {
        !matches!(self, Classifier::LinkedInToken | Classifier::YouTubeToken)
    }
}
