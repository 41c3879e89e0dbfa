// The sign-in page: name and password; the service answers with a session cookie.

import { api } from "../api.js";
import { h } from "../dom.js";

export function renderLogin({ onLogin }) {
  const error = h("p", { class: "form-error", role: "alert" });
  const name = h("input", { name: "name", id: "login-name", autocomplete: "username", required: true, autofocus: true });
  const password = h("input", { name: "password", id: "login-password", type: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    { class: "login card-panel", id: "login-form" },
    h("h1", {}, h("span", { class: "logo", "aria-hidden": "true" }, "▣"), " Video Annotator"),
    h("p", { class: "muted" }, "Build video classifiers by labelling shots."),
    h("label", { for: "login-name" }, "Name"),
    name,
    h("label", { for: "login-password" }, "Password"),
    password,
    error,
    submit,
    h("p", { class: "muted small" }, "No account? An admin creates one with ", h("code", {}, "va users add NAME --role annotator"), "."),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    error.textContent = "";
    try {
      const result = await api.login(name.value.trim(), password.value);
      await onLogin(result);
    } catch (e) {
      error.textContent = e.status === 401 ? "Wrong name or password." : e.message;
      submit.disabled = false;
    }
  });
  return h("div", { class: "login-page" }, form);
}
