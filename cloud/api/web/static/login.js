import { ApiError, login, safeNext } from "./api.js";
import { $ } from "./dom.js";

const form = $("#login-form");
const error = $("#login-error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const username = $("#username").value.trim();
  const password = $("#password").value;
  if (!username || !password) {
    error.textContent = "Enter your username and password.";
    error.hidden = false;
    (username ? $("#password") : $("#username")).focus();
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const session = await login(username, password);
    const next = safeNext(new URLSearchParams(location.search).get("next"));
    const home = session.user.role === "family" ? "/family" : "/wall";
    location.assign(next || home);
  } catch (failure) {
    error.textContent =
      failure instanceof ApiError && failure.status === 429
        ? "Too many failed attempts. Wait a few minutes and try again."
        : failure instanceof ApiError && failure.status === 401
          ? "Wrong username or password."
          : "Logging in failed. Try again.";
    error.hidden = false;
    $("#password").value = "";
    $("#password").focus();
  } finally {
    button.disabled = false;
  }
});

$("#username").focus();
