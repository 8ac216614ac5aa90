//! What publishing to a Page needs from a Facebook grant, and how Facebook asks again for
//! permissions the user declined (`auth_type=rerequest`: without it, the login dialog does not
//! offer a declined permission a second time). The granted permissions are read from
//! `debug_token`, because the code exchange's answer does not list them.

use secrecy::SecretString;
use serde::Deserialize;

use super::FacebookConnector;
use crate::permissions::{Needed, Rule};
use crate::Failure;

pub(crate) static RULE: Rule = Rule {
    needs: &[
        Needed { scope: "pages_show_list", why: "to find the Page you manage and get its token" },
        Needed {
            scope: "pages_read_engagement",
            why: "to read the Page, which posting to it requires",
        },
        Needed { scope: "pages_manage_posts", why: "to publish posts on your Page" },
    ],
    ask_again: &[("auth_type", "rerequest")],
};

#[derive(Deserialize)]
struct DebugToken {
    data: DebugData,
}

#[derive(Deserialize)]
struct DebugData {
    #[serde(default)]
    scopes: Vec<String>,
}

impl FacebookConnector {
    /// The permissions `token` (a user token of this app) was granted, from `debug_token`
    /// called with the app token.
    pub(super) async fn granted_scopes(
        &self,
        token: &SecretString,
    ) -> Result<Vec<String>, Failure> {
        use secrecy::ExposeSecret;
        let app_token = format!("{}|{}", self.client_id, self.secret());
        let mut url = self.graph_url("debug_token");
        url.query_pairs_mut()
            .append_pair("input_token", token.expose_secret())
            .append_pair("access_token", &app_token);
        let answer: DebugToken =
            self.connect_call(self.http.get(url), "Facebook debug_token").await?;
        Ok(answer.data.scopes)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_scopes_of_a_documented_debug_token_answer() {
        let body = r#"{"data":{"app_id":"1","type":"USER","is_valid":true,"scopes":["pages_show_list","pages_manage_posts"],"user_id":"9"}}"#;
        let parsed: super::DebugToken = serde_json::from_str(body).unwrap();
        assert_eq!(parsed.data.scopes, vec!["pages_show_list", "pages_manage_posts"]);
    }
}
