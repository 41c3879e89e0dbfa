// The single-page app: a hash router over the login page, the labels list and a label's page.

import { api, ApiError, setCsrf } from "./api.js";
import { h, isTyping, replace, toast } from "./dom.js";
import { renderLabels } from "./views/labels.js";
import { renderLabel } from "./views/label.js";
import { renderLogin } from "./views/login.js";
import { renderTitle, renderTitles } from "./views/title.js";

const root = document.getElementById("app");
const session = { me: null, info: null, page: null };

function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [first, second, third] = hash.split("/").map(decodeURIComponent);
  if (first === "login") return { page: "login" };
  if (first === "labels" && second) return { page: "label", label: second, tab: third || "search" };
  if (first === "titles") return second ? { page: "title", videoId: second, shotId: third || "" } : { page: "titles" };
  return { page: "labels" };
}

export function go(path) {
  if (location.hash === `#${path}`) render();
  else location.hash = path;
}

function topBar() {
  const me = session.me;
  return h(
    "header",
    { class: "topbar" },
    h("a", { class: "brand", href: "#/labels" }, h("span", { class: "logo", "aria-hidden": "true" }, "▣"), "Video Annotator"),
    h("nav", { class: "crumbs", id: "crumbs" }),
    me && h("a", { class: "nav-titles", href: "#/titles", title: "Every ingested title: open one to see its label tracks" }, "Titles"),
    me &&
      h(
        "div",
        { class: "who" },
        h("span", { class: "user", title: `signed in as ${me.name} (${me.role})` }, me.name, h("small", {}, me.role)),
        h("button", { type: "button", class: "link", onclick: logout }, "Sign out"),
      ),
  );
}

async function logout() {
  try {
    await api.logout();
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
  }
  session.me = null;
  go("/login");
}

async function loadSession() {
  try {
    const me = await api.me();
    session.me = me.user || me;
    setCsrf(me.csrf_token || session.me.csrf_token);
  } catch (e) {
    if (e.status === 401 || e.status === 403) session.me = null;
    else throw e;
  }
  if (session.me && !session.info) {
    try {
      const health = await api.health();
      const spec = String(health.encoder || "");
      session.info = { encoder: spec, has_text: Boolean(health.has_text), stores: health.stores || {} };
    } catch {
      session.info = {};
    }
  }
}

async function render() {
  if (session.page && session.page.dispose) session.page.dispose();
  session.page = null;
  const where = route();
  try {
    if (!session.me) await loadSession();
  } catch (e) {
    replace(root, h("div", { class: "fatal" }, h("h1", {}, "The service is not answering"), h("p", {}, e.message)));
    return;
  }
  if (!session.me && where.page !== "login") {
    go("/login");
    return;
  }
  if (where.page === "login") {
    replace(root, renderLogin({ onLogin: onLogin }));
    return;
  }
  const main = h("main", { id: "main" });
  replace(root, topBar(), main);
  try {
    if (where.page === "label") session.page = await renderLabel(main, { session, name: where.label, tab: where.tab, go });
    else if (where.page === "titles") session.page = await renderTitles(main, { go });
    else if (where.page === "title") session.page = await renderTitle(main, { session, videoId: where.videoId, shotId: where.shotId });
    else session.page = await renderLabels(main, { session, go });
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      session.me = null;
      go("/login");
      return;
    }
    replace(main, h("div", { class: "fatal" }, h("h1", {}, "Something went wrong"), h("p", {}, e.message), h("a", { href: "#/labels" }, "Back to labels")));
  }
}

async function onLogin(result) {
  session.me = null;
  session.info = null;
  if (result && result.csrf_token) setCsrf(result.csrf_token);
  await loadSession();
  toast(`Welcome, ${session.me ? session.me.name : ""}`);
  go("/labels");
}

document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || isTyping(event)) return;
  if (session.page && session.page.onKey && session.page.onKey(event)) event.preventDefault();
});

window.addEventListener("hashchange", render);
render();
