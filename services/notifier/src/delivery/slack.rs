//! A Slack incoming-webhook message (Block Kit) rendered from a delivery's body: the title, the
//! text, the advice and a Reconnect button when the notification has a link.

use serde_json::{json, Value};

/// The message for `body` (the `{"type","timestamp","data"}` every channel is rendered from).
pub(crate) fn message(body: &Value) -> Value {
    let data = &body["data"];
    let title = data["title"].as_str().unwrap_or("Lifeline notification");
    let mut blocks = vec![json!({"type": "header", "text": {"type": "plain_text", "text": title}})];
    if let Some(text) = data["body"].as_str() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
    }
    if let Some(advice) = data["advice"].as_str().filter(|a| !a.is_empty()) {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*What to do:* {advice}")}}));
    }
    if let Some(link) = data["reconnect_url"].as_str() {
        blocks.push(json!({"type": "actions", "elements": [{
            "type": "button", "style": "primary",
            "text": {"type": "plain_text", "text": "Reconnect"},
            "url": link,
        }]}));
    }
    // `text` is what notifications and clients without blocks show.
    json!({"text": title, "blocks": blocks})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_account_gets_title_text_advice_and_a_reconnect_button() {
        let m = message(&json!({"type": "account.needs_reconnect", "data": {
            "title": "@acme on LinkedIn needs reconnecting", "body": "Lifeline cannot publish.",
            "advice": "Reconnect it.", "reconnect_url": "https://app.example/accounts#a1"}}));
        assert_eq!(m["text"], "@acme on LinkedIn needs reconnecting");
        let blocks = m["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 4);
        assert_eq!(blocks[3]["elements"][0]["url"], "https://app.example/accounts#a1");
        assert!(blocks[2]["text"]["text"].as_str().unwrap().contains("Reconnect it."));
    }

    #[test]
    fn without_a_link_there_is_no_button() {
        let m = message(&json!({"type": "channel.test", "data": {"title": "Test"}}));
        assert_eq!(m["blocks"].as_array().unwrap().len(), 1);
    }
}
