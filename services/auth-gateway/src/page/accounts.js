// The Accounts page. It signs in with the session cookie (GET /session/token gives a short-lived
// bearer token), reads /v1/accounts every few seconds and updates each account's card in place,
// so focus and screen-reader position survive the updates. No framework, no CDN, no inline code.
"use strict";

const POLL_MS = 3000;
const POLL_BUSY_MS = 1500;

const $ = (id) => document.getElementById(id);
const views = new Map();
let token = null;
let tokenTimer = null;
let signedIn = true;
let outcome = null;
let focusAccount = null;
let accountsById = new Map();
let disconnecting = null;

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function setHidden(el, hidden) {
  if (el.hidden !== hidden) el.hidden = hidden;
}

function when(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function plural(n, one, many) {
  return n === 1 ? `${n} ${one}` : `${n} ${many}`;
}

function capitalize(s) {
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

// "@acme on LinkedIn", or "Demo User on LinkedIn" for a platform without handles.
function label(a) {
  return `${a.handle || a.name} on ${a.platform_name}`;
}

function announce(text) {
  setText($("announce"), text);
}

function problem(text) {
  const p = $("problem");
  setText(p, text || "");
  setHidden(p, !text);
}

function signedOut(message) {
  signedIn = false;
  token = null;
  clearTimeout(tokenTimer);
  setHidden($("accounts-section"), true);
  setHidden($("connect-section"), true);
  setHidden($("signout"), true);
  setText(
    $("intro"),
    message ||
      "You are not signed in. Open a sign-in link: run “lifelinectl page-link”, or use the link in a Lifeline notification.",
  );
}

async function refreshToken() {
  const r = await fetch("/session/token", { credentials: "same-origin", cache: "no-store" });
  if (r.status === 401) {
    signedOut();
    return false;
  }
  if (!r.ok) throw new Error(`Signing in failed (${r.status}); retrying shortly.`);
  const j = await r.json();
  token = j.token;
  clearTimeout(tokenTimer);
  // A new token a minute before this one lapses.
  tokenTimer = setTimeout(() => refreshToken().catch(() => {}), Math.max(5, j.expires_in - 60) * 1000);
  return true;
}

async function api(method, path, body) {
  if (!token && !(await refreshToken())) return null;
  const send = () =>
    fetch(path, {
      method,
      credentials: "same-origin",
      cache: "no-store",
      headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
  let r = await send();
  if (r.status === 401) {
    if (!(await refreshToken())) return null;
    r = await send();
  }
  let json = null;
  if (r.status !== 204) json = await r.json().catch(() => null);
  if (!r.ok) {
    const message = (json && json.message) || `The request failed (${r.status}).`;
    throw new Error(capitalize(message));
  }
  return json;
}

function createView(a) {
  const li = $("account-template").content.firstElementChild.cloneNode(true);
  li.id = `account-${a.id}`;
  const q = (sel) => li.querySelector(sel);
  const v = {
    li,
    icon: q(".icon"),
    name: q(".name"),
    handle: q(".handle"),
    badge: q(".badge"),
    stateText: q(".state-text"),
    todo: q(".todo"),
    errorFact: q(".fact-error"),
    lastError: q(".last-error"),
    waiting: q(".waiting"),
    disconnects: q(".disconnects"),
    reconnect: q(".reconnect"),
    disconnect: q(".disconnect"),
  };
  v.name.id = `account-${a.id}-name`;
  v.name.tabIndex = -1;
  q("article").setAttribute("aria-labelledby", v.name.id);
  v.reconnect.addEventListener("click", () => reconnect(a.id, v.reconnect));
  v.disconnect.addEventListener("click", () => askDisconnect(a.id, v.disconnect));
  return v;
}

function stateOf(a) {
  switch (a.state) {
    case "needs_reconnect":
      return ["⚠ Needs reconnecting", `${capitalize(a.cause_text || "the platform refused the connection")}.`];
    case "expiring":
      return [`Expiring on ${when(a.expiring_at)}`, "Posting works until then."];
    case "reconnecting": {
      const cause = a.status === "needs_reconnect" && a.cause_text ? ` (${a.cause_text})` : "";
      return [
        "Reconnect in progress",
        `Finish signing in on ${a.platform_name} in the page that opened${cause}. Closed it? Click Reconnect again.`,
      ];
    }
    default:
      return ["✓ Healthy", "Posts go out as scheduled."];
  }
}

function waitingText(a) {
  const parts = [];
  if (a.waiting_posts > 0) parts.push(`${plural(a.waiting_posts, "post", "posts")} waiting for a reconnect`);
  if (a.retrying_posts > 0) parts.push(`${a.retrying_posts} being published now`);
  if (a.queued_posts > 0) {
    const until = a.queued_until ? `, all out by about ${when(a.queued_until)}` : "";
    parts.push(`${a.queued_posts} queued within ${a.platform_name}'s posting limit${until}`);
  }
  if (a.published_since_reconnect > 0) parts.push(`${a.published_since_reconnect} published since the reconnect`);
  return parts.length ? parts.join("; ") : "None";
}

function lastErrorText(a) {
  if (!a.last_error) return "";
  if (a.status === "needs_reconnect") return `“${a.last_error}”, since ${when(a.status_changed_at)}`;
  return `“${a.last_error}” on ${when(a.last_error_at)} (fixed by a reconnect)`;
}

function update(v, a) {
  v.li.dataset.state = a.state;
  const iconClass = `icon icon-${a.platform}`;
  if (v.icon.className !== iconClass) v.icon.className = iconClass;
  setText(v.name, a.name);
  setText(v.handle, a.handle ? `${a.handle} · ${a.platform_name}` : a.platform_name);
  const [badge, text] = stateOf(a);
  setText(v.badge, badge);
  setText(v.stateText, text);
  setText(v.todo, a.action || "");
  const error = lastErrorText(a);
  setText(v.lastError, error);
  setHidden(v.errorFact, !error);
  setText(v.waiting, waitingText(a));
  setText(v.disconnects, String(a.disconnects_30d));
  setHidden(v.reconnect, a.state === "healthy");
  if (!v.reconnect.disabled) setText(v.reconnect, a.state === "reconnecting" ? "Reconnect again" : "Reconnect");
  v.reconnect.setAttribute("aria-label", `${v.reconnect.textContent} ${label(a)}`);
  v.disconnect.setAttribute("aria-label", `Disconnect ${label(a)}`);
}

function render(accounts) {
  accountsById = new Map(accounts.map((a) => [a.id, a]));
  const list = $("accounts");
  for (const [id, v] of views) {
    if (!accountsById.has(id)) {
      if (v.li.contains(document.activeElement)) $("accounts-heading").focus();
      v.li.remove();
      views.delete(id);
    }
  }
  for (const a of accounts) {
    let v = views.get(a.id);
    if (!v) {
      v = createView(a);
      views.set(a.id, v);
      list.append(v.li);
    }
    update(v, a);
  }
  setHidden($("no-accounts"), accounts.length > 0);
  setHidden($("accounts-section"), false);
  setText($("intro"), "Lifeline keeps these accounts connected. When one needs you, it says why and what to do.");
}

// What the platform's consent brought the browser back for, told until the posts are out.
function tellOutcome() {
  if (!outcome) return false;
  const a = accountsById.get(outcome.id);
  if (!a) {
    announce(`The account was ${outcome.kind}.`);
    return false;
  }
  if (outcome.kind === "connected") {
    announce(`${label(a)} is connected.`);
    return false;
  }
  const pending = a.waiting_posts + a.retrying_posts + a.queued_posts;
  const total = pending + a.published_since_reconnect;
  let text = `${label(a)} is reconnected`;
  if (total === 0) text += "; no posts were waiting.";
  else if (pending > 0) text += `; ${plural(total, "waiting post is", "waiting posts are")} being published.`;
  else text += `; ${plural(total, "waiting post was", "waiting posts were")} published.`;
  announce(text);
  return pending > 0;
}

let pollTimer = null;
async function poll() {
  clearTimeout(pollTimer);
  let busy = false;
  try {
    const j = await api("GET", "/v1/accounts");
    if (!j) return;
    render(j.accounts);
    busy = tellOutcome() || j.accounts.some((a) => a.retrying_posts > 0 || a.queued_posts > 0);
    if (focusAccount) {
      const v = views.get(focusAccount);
      if (v) {
        v.li.classList.add("focus");
        v.name.focus();
        v.li.scrollIntoView({ block: "center" });
      }
      focusAccount = null;
    }
    problem("");
  } catch (e) {
    problem(e.message);
  }
  if (signedIn) pollTimer = setTimeout(poll, busy ? POLL_BUSY_MS : POLL_MS);
}

async function loadPlatforms() {
  const j = await api("GET", "/v1/platforms");
  if (!j) return;
  const list = $("platforms");
  list.replaceChildren();
  for (const p of j.platforms) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    const icon = document.createElement("span");
    icon.className = `icon icon-${p.id}`;
    icon.setAttribute("aria-hidden", "true");
    b.append(icon, document.createTextNode(`Connect ${p.name}`));
    b.addEventListener("click", () => connect(p, b));
    li.append(b);
    list.append(li);
  }
  setHidden($("connect-section"), j.platforms.length === 0);
}

// The connect and reconnect calls set the OAuth binding cookie, so they go through fetch on
// this origin; only then does the browser leave for the platform.
async function authorize(path, body, button, busyText) {
  const before = button.textContent;
  button.disabled = true;
  setText(button, busyText);
  try {
    const j = await api("POST", path, body);
    if (j && j.authorize_url) {
      location.assign(j.authorize_url);
      return;
    }
  } catch (e) {
    problem(e.message);
  }
  button.disabled = false;
  setText(button, before);
}

function reconnect(id, button) {
  const a = accountsById.get(id);
  const where = a ? a.platform_name : "the platform";
  authorize(`/v1/accounts/${id}/reconnect`, null, button, `Opening ${where}…`);
}

function connect(platform, button) {
  authorize("/v1/accounts/connect", { platform: platform.id }, button, `Opening ${platform.name}…`);
}

function askDisconnect(id, button) {
  const a = accountsById.get(id);
  if (!a) return;
  disconnecting = { id, button, label: label(a) };
  setText($("disconnect-title"), `Disconnect ${label(a)}?`);
  setText($("disconnect-name"), label(a));
  const waiting = a.waiting_posts + a.retrying_posts;
  const w = $("disconnect-waiting");
  setText(w, waiting ? `The ${plural(waiting, "post", "posts")} waiting for a reconnect will never go out from this connection.` : "");
  setHidden(w, waiting === 0);
  $("disconnect-dialog").showModal();
}

async function closeDisconnect() {
  const d = $("disconnect-dialog");
  const chosen = disconnecting;
  disconnecting = null;
  if (!chosen) return;
  if (d.returnValue !== "confirm") {
    chosen.button.focus();
    return;
  }
  chosen.button.disabled = true;
  try {
    await api("DELETE", `/v1/accounts/${chosen.id}`);
    // The outcome a consent brought us back for is over once its account is gone.
    if (outcome && outcome.id === chosen.id) outcome = null;
    announce(`${chosen.label} is disconnected.`);
    const v = views.get(chosen.id);
    if (v) {
      v.li.remove();
      views.delete(chosen.id);
    }
    accountsById.delete(chosen.id);
    $("accounts-heading").focus();
    poll();
  } catch (e) {
    chosen.button.disabled = false;
    chosen.button.focus();
    problem(e.message);
  }
}

function readParameters() {
  const params = new URLSearchParams(location.search);
  for (const kind of ["reconnected", "connected"]) {
    const id = params.get(kind);
    if (id) {
      outcome = { kind, id };
      focusAccount = id;
    }
  }
  if (params.get("account")) focusAccount = params.get("account");
  const wasSignedOut = params.has("signed_out");
  if ([...params.keys()].length) history.replaceState(null, "", location.pathname);
  return wasSignedOut;
}

async function start(wasSignedOut) {
  try {
    if (!(await refreshToken())) {
      if (wasSignedOut) signedOut("You are signed out. Open a new sign-in link to come back.");
      return;
    }
  } catch (e) {
    problem(e.message);
    setTimeout(() => start(false), POLL_MS);
    return;
  }
  setHidden($("signout"), false);
  await loadPlatforms().catch((e) => problem(e.message));
  poll();
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && signedIn && token) poll();
});
$("disconnect-dialog").addEventListener("close", closeDisconnect);
start(readParameters());
