//! The email channel: SMTP settings (`LIFELINE_SMTP_*`), the message rendered from a delivery's
//! body (a plain-text and an HTML part, the title as subject, the reconnect link), and sending
//! it with `lettre`. The delivery id is the Message-ID, the same on every attempt.

use std::time::Duration;

use lettre::{
    message::{Mailbox, MultiPart},
    transport::smtp::authentication::Credentials,
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use lifeline_kit::config::{ConfigError, Env};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain SMTP (a local catcher, a relay on the same host).
    None,
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

/// `LIFELINE_SMTP_*`; absent host: email channels cannot be created.
#[derive(Clone)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub user: Option<String>,
    pub password: Option<SecretString>,
    pub from: Mailbox,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Smtp {
    pub fn from_env(env: &Env) -> Result<Option<Smtp>, ConfigError> {
        env.declare(["LIFELINE_SMTP_PORT", "LIFELINE_SMTP_TLS", "LIFELINE_SMTP_USER"]);
        env.declare(["LIFELINE_SMTP_PASSWORD", "LIFELINE_SMTP_FROM"]);
        let Some(host) = env.raw("LIFELINE_SMTP_HOST").filter(|h| !h.is_empty()) else {
            return Ok(None);
        };
        let tls = match env.string_or("LIFELINE_SMTP_TLS", "starttls").as_str() {
            "none" => TlsMode::None,
            "starttls" => TlsMode::StartTls,
            "tls" => TlsMode::Tls,
            _ => return Err(env.invalid("LIFELINE_SMTP_TLS", "one of none, starttls, tls")),
        };
        let default_port = match tls {
            TlsMode::None => 25,
            TlsMode::StartTls => 587,
            TlsMode::Tls => 465,
        };
        let from = env
            .required("LIFELINE_SMTP_FROM", "the sender, e.g. Lifeline <alerts@example.com>")?
            .parse::<Mailbox>()
            .map_err(|e| env.invalid("LIFELINE_SMTP_FROM", e.to_string()))?;
        Ok(Some(Smtp {
            host,
            port: env.parse_in("LIFELINE_SMTP_PORT", default_port, 1..=65535)?,
            tls,
            user: env.raw("LIFELINE_SMTP_USER").filter(|u| !u.is_empty()),
            password: env.raw("LIFELINE_SMTP_PASSWORD").map(SecretString::from),
            from,
        }))
    }

    /// The transport (no pool: a connection per message keeps a dead server from holding one).
    pub(crate) fn transport(
        &self,
        timeout: Duration,
    ) -> Result<AsyncSmtpTransport<Tokio1Executor>, lettre::transport::smtp::Error> {
        let builder = match self.tls {
            TlsMode::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host),
            TlsMode::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&self.host)?,
            TlsMode::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&self.host)?,
        };
        let mut builder = builder.port(self.port).timeout(Some(timeout));
        if let (Some(user), Some(password)) = (&self.user, &self.password) {
            builder = builder
                .credentials(Credentials::new(user.clone(), password.expose_secret().to_owned()));
        }
        Ok(builder.build())
    }
}

/// The subject, plain text and HTML of the email for a delivery body.
pub(crate) fn render(body: &Value) -> (String, String, String) {
    let data = &body["data"];
    let text_of = |k: &str| data[k].as_str().unwrap_or_default().to_owned();
    let subject = data["title"].as_str().unwrap_or("Lifeline notification").to_owned();
    let (text, advice, link) = (text_of("body"), text_of("advice"), text_of("reconnect_url"));
    let mut plain = format!("{text}\n");
    if !advice.is_empty() {
        plain.push_str(&format!("\nWhat to do: {advice}\n"));
    }
    if !link.is_empty() {
        plain.push_str(&format!("\nReconnect: {link}\n"));
    }
    plain.push_str("\n-- \nLifeline, for your workspace's connected accounts.\n");
    let mut html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\"><h2>{}</h2><p>{}</p>",
        escape(&subject),
        escape(&text)
    );
    if !advice.is_empty() {
        html.push_str(&format!("<p><strong>What to do:</strong> {}</p>", escape(&advice)));
    }
    if !link.is_empty() {
        html.push_str(&format!(
            "<p><a href=\"{}\" style=\"padding:8px 14px;background:#2563eb;color:#fff;text-decoration:none;border-radius:4px\">Reconnect</a></p>",
            escape(&link)
        ));
    }
    html.push_str("<p style=\"color:#666\">Lifeline, for your workspace's connected accounts.</p></body></html>");
    (subject, plain, html)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Sends the delivery `id` with `body` to `to`; the SMTP reply code, or why there is none.
pub(crate) async fn send(
    smtp: &Smtp,
    timeout: Duration,
    id: uuid::Uuid,
    to: &str,
    body: &Value,
) -> Result<u16, String> {
    let (subject, plain, html) = render(body);
    let to: Mailbox = to.parse().map_err(|e| format!("bad address: {e}"))?;
    let message = Message::builder()
        .from(smtp.from.clone())
        .to(to)
        .subject(subject)
        .message_id(Some(format!("<{id}@lifeline.notifier>")))
        .multipart(MultiPart::alternative_plain_html(plain, html))
        .map_err(|e| format!("cannot build the message: {e}"))?;
    let transport = smtp.transport(timeout).map_err(|e| format!("SMTP set-up: {e}"))?;
    match transport.send(message).await {
        Ok(response) => Ok(u16::from(response.code())),
        Err(e) => match e.status() {
            Some(code) => Ok(u16::from(code)),
            None => Err(format!("SMTP: {e}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_parts_carry_the_text_the_advice_and_the_link() {
        let (subject, plain, html) = render(&json!({"data": {
            "title": "@acme on LinkedIn needs reconnecting", "body": "Lifeline cannot publish <now>.",
            "advice": "Reconnect it.", "reconnect_url": "https://app.example/?account=a&b"}}));
        assert_eq!(subject, "@acme on LinkedIn needs reconnecting");
        assert!(plain.contains("Reconnect: https://app.example/?account=a&b"), "{plain}");
        assert!(plain.contains("What to do: Reconnect it."));
        assert!(html.contains("href=\"https://app.example/?account=a&amp;b\""), "{html}");
        assert!(html.contains("cannot publish &lt;now&gt;."), "{html}");
    }

    #[test]
    fn smtp_settings_are_validated() {
        let env = |pairs: &[(&str, &str)]| Env::from_pairs(pairs.iter().map(|(k, v)| (*k, *v)));
        assert!(Smtp::from_env(&env(&[])).unwrap().is_none());
        let s = Smtp::from_env(&env(&[
            ("LIFELINE_SMTP_HOST", "127.0.0.1"),
            ("LIFELINE_SMTP_TLS", "none"),
            ("LIFELINE_SMTP_FROM", "Lifeline <alerts@example.com>"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((s.port, s.tls), (25, TlsMode::None));
        let bad = Smtp::from_env(&env(&[("LIFELINE_SMTP_HOST", "h"), ("LIFELINE_SMTP_FROM", "x")]));
        assert!(bad.unwrap_err().to_string().contains("LIFELINE_SMTP_FROM"));
        let bad = Smtp::from_env(&env(&[
            ("LIFELINE_SMTP_HOST", "h"),
            ("LIFELINE_SMTP_FROM", "a@b.c"),
            ("LIFELINE_SMTP_TLS", "maybe"),
        ]));
        assert!(bad.unwrap_err().to_string().contains("LIFELINE_SMTP_TLS"));
    }
}
