//! The post log: every post a platform accepted, duplicates counted, and
//! the counters `GET /_sim/stats` reports.

use std::time::Instant;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{rfc3339, Accounts};
use crate::state::PostRecord;

#[derive(Debug, Clone)]
pub(crate) struct Post {
    pub id: String,
    pub user_key: String,
    pub text: String,
    pub created_at: DateTime<Utc>,
    /// The same moment on the real monotonic clock (X's duplicate window).
    pub accepted_at: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub refresh_token_reuse: u64,
    pub duplicate_posts: u64,
    pub tokens_issued: u64,
    pub refreshes: u64,
    pub posts: u64,
}

impl Accounts {
    /// Records an accepted post; the same text from the same user twice is
    /// accepted but counted as a duplicate. `id` builds the id from a counter.
    pub fn record_post(
        &mut self,
        user_key: &str,
        text: &str,
        id: impl FnOnce(u64) -> String,
    ) -> Post {
        self.record_post_at(user_key, text, Utc::now(), id)
    }

    /// `record_post` for a post the platform stamped already (X derives the
    /// id from the creation time).
    pub fn record_post_at(
        &mut self,
        user_key: &str,
        text: &str,
        created_at: DateTime<Utc>,
        id: impl FnOnce(u64) -> String,
    ) -> Post {
        if self.posts.iter().any(|p| p.user_key == user_key && p.text == text) {
            self.stats.duplicate_posts += 1;
        }
        self.next_post += 1;
        let post = Post {
            id: id(self.next_post),
            user_key: user_key.to_owned(),
            text: text.to_owned(),
            created_at,
            accepted_at: Instant::now(),
        };
        self.posts.push(post.clone());
        self.stats.posts += 1;
        post
    }

    /// The user's posts in acceptance order (`.rev()` for newest first).
    pub fn posts_of<'a>(
        &'a self,
        user_key: &'a str,
    ) -> impl DoubleEndedIterator<Item = &'a Post> + 'a {
        self.posts.iter().filter(move |p| p.user_key == user_key)
    }

    /// The post log for `GET /_sim/posts`, with `created_at` in the
    /// platform's own format.
    pub fn post_records_as(
        &self,
        platform: &'static str,
        timestamp: fn(DateTime<Utc>) -> String,
    ) -> Vec<PostRecord> {
        self.posts
            .iter()
            .filter_map(|p| {
                let u = self.users.get(&p.user_key)?;
                Some(PostRecord {
                    platform,
                    id: p.id.clone(),
                    user_id: u.id.clone(),
                    username: u.username.clone(),
                    text: p.text.clone(),
                    created_at: timestamp(p.created_at),
                })
            })
            .collect()
    }

    pub fn post_records(&self, platform: &'static str) -> Vec<PostRecord> {
        self.post_records_as(platform, rfc3339)
    }

    pub fn stats_json(&self) -> serde_json::Value {
        let s = &self.stats;
        json!({
            "refresh_token_reuse": s.refresh_token_reuse,
            "duplicate_posts": s.duplicate_posts,
            "tokens_issued": s.tokens_issued,
            "refreshes": s.refreshes,
            "posts": s.posts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_counted_not_refused() {
        let mut a = Accounts::default();
        a.record_post("u", "hi", |n| n.to_string());
        a.record_post("u", "hi", |n| n.to_string());
        a.record_post("v", "hi", |n| n.to_string());
        assert_eq!(a.stats.posts, 3);
        assert_eq!(a.stats.duplicate_posts, 1);
    }
}
