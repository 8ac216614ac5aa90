//! What each platform accepts in a post, checked when the post is scheduled: a post the platform
//! can never take (a 400-character tweet, an Instagram post without an image) is refused with
//! the rule it breaks, instead of being dead-lettered later. The numbers live with each
//! connector (`<platform>/mod.rs`, `POST_RULES`); this module applies them.

use lifeline_kit::Platform;

use crate::MediaKind;

/// How a platform counts a post's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counting {
    /// Unicode scalar values.
    Chars,
    /// X's weighted count: most Latin, general punctuation and symbol ranges weigh 1, other
    /// characters (CJK, emoji, …) 2, and every URL 23, whatever its length.
    XWeighted,
}

/// Which media a post needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MediaNeed {
    Optional,
    /// An image or a video.
    ImageOrVideo,
    Video,
}

pub(crate) struct PostRules {
    pub max_length: usize,
    pub counting: Counting,
    pub media: MediaNeed,
}

/// The rule a post breaks, for a 422: a stable `rule` id and words for the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: &'static str,
    pub message: String,
}

fn rules(platform: Platform) -> &'static PostRules {
    match platform {
        Platform::X => &crate::x::POST_RULES,
        Platform::LinkedIn => &crate::linkedin::POST_RULES,
        Platform::Instagram => &crate::instagram::POST_RULES,
        Platform::Threads => &crate::threads::POST_RULES,
        Platform::Facebook => &crate::facebook::POST_RULES,
        Platform::YouTube => &crate::youtube::POST_RULES,
        Platform::TikTok => &crate::tiktok::POST_RULES,
    }
}

/// Checks a post against `platform`'s rules.
pub fn check_post(
    platform: Platform,
    text: &str,
    media: Option<MediaKind>,
) -> Result<(), Violation> {
    let r = rules(platform);
    let name = platform.display_name();
    match (r.media, media) {
        (MediaNeed::ImageOrVideo, None) => {
            return Err(Violation {
                rule: "media_required",
                message: format!("{name} posts need an image or a video (media)"),
            })
        }
        (MediaNeed::Video, None | Some(MediaKind::Image)) => {
            return Err(Violation {
                rule: "video_required",
                message: format!("{name} posts need a video (media with kind video)"),
            })
        }
        _ => {}
    }
    let length = match r.counting {
        Counting::Chars => text.chars().count(),
        Counting::XWeighted => x_weighted_length(text),
    };
    if length > r.max_length {
        let unit = match r.counting {
            Counting::Chars => "characters",
            Counting::XWeighted => "weighted characters (URLs count 23, CJK and emoji 2)",
        };
        return Err(Violation {
            rule: "text_too_long",
            message: format!(
                "{name} accepts at most {} {unit}; this text has {length}",
                r.max_length
            ),
        });
    }
    Ok(())
}

/// The ranges X weighs 1 (twitter-text's v3 configuration); everything else weighs 2.
const X_LIGHT: [(u32, u32); 4] = [(0, 4351), (8192, 8205), (8208, 8223), (8242, 8247)];
const X_URL_WEIGHT: usize = 23;

fn x_weighted_length(text: &str) -> usize {
    let mut total = 0;
    for word in text.split_inclusive(char::is_whitespace) {
        let bare = word.trim_end();
        if bare.starts_with("http://") || bare.starts_with("https://") {
            total += X_URL_WEIGHT + (word.len() - bare.len());
            continue;
        }
        total +=
            word.chars()
                .map(|c| {
                    if X_LIGHT.iter().any(|(a, b)| (*a..=*b).contains(&(c as u32))) {
                        1
                    } else {
                        2
                    }
                })
                .sum::<usize>();
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_counts_urls_as_23_and_wide_characters_twice() {
        assert_eq!(x_weighted_length("hello"), 5);
        assert_eq!(
            x_weighted_length("see https://example.com/a/very/long/path/indeed ok"),
            4 + 23 + 3
        );
        assert_eq!(x_weighted_length("日本"), 4);
        assert_eq!(x_weighted_length("é—"), 2, "Latin and the dashes weigh 1");
        assert_eq!(x_weighted_length("…"), 2, "the ellipsis is outside X's light ranges");
        assert_eq!(x_weighted_length("🙂"), 2);
    }

    #[test]
    fn each_platform_refuses_what_it_can_never_accept() {
        let long = |n| "a".repeat(n);
        assert!(check_post(Platform::X, &long(280), None).is_ok());
        assert_eq!(check_post(Platform::X, &long(281), None).unwrap_err().rule, "text_too_long");
        assert_eq!(
            check_post(Platform::X, &"日".repeat(141), None).unwrap_err().rule,
            "text_too_long"
        );
        assert!(check_post(Platform::X, &"日".repeat(140), None).is_ok());
        assert!(check_post(Platform::LinkedIn, &long(3000), None).is_ok());
        assert!(check_post(Platform::LinkedIn, &long(3001), None).is_err());
        assert!(check_post(Platform::Threads, &long(500), None).is_ok());
        assert!(check_post(Platform::Threads, &long(501), None).is_err());
        assert_eq!(
            check_post(Platform::Instagram, "caption", None).unwrap_err().rule,
            "media_required"
        );
        assert!(check_post(Platform::Instagram, "caption", Some(MediaKind::Image)).is_ok());
        assert!(check_post(Platform::Instagram, &long(2201), Some(MediaKind::Image)).is_err());
        for p in [Platform::YouTube, Platform::TikTok] {
            assert_eq!(
                check_post(p, "t", Some(MediaKind::Image)).unwrap_err().rule,
                "video_required"
            );
            assert_eq!(check_post(p, "t", None).unwrap_err().rule, "video_required");
            assert!(check_post(p, "t", Some(MediaKind::Video)).is_ok());
        }
        assert!(check_post(Platform::Facebook, &long(63_206), None).is_ok());
        assert!(check_post(Platform::Facebook, &long(63_207), None).is_err());
        let v = check_post(Platform::X, &long(300), None).unwrap_err();
        assert!(v.message.contains("280") && v.message.contains("300"), "{}", v.message);
    }
}
