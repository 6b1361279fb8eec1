// The viewer of `showcase serve`: search boxes fill their suggestion lists as you type; Show fetches the card.
"use strict";
const $ = (id) => document.getElementById(id);

function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

async function suggest(kind, input, list) {
  const response = await fetch(`/api/${kind}?q=${encodeURIComponent(input.value)}`);
  if (!response.ok) return;
  const items = await response.json();
  list.replaceChildren(...items.map((item) => {
    const option = document.createElement("option");
    option.value = item.id;
    option.textContent = item.name ? `${item.name} (${item.id})` : (item.reviews !== undefined ? `${item.reviews} reviews` : item.id);
    return option;
  }));
}

async function show(event) {
  if (event) event.preventDefault();
  const params = new URLSearchParams({ user: $("user").value.trim(), business: $("business").value.trim(), k: $("k").value });
  const status = $("status");
  status.textContent = "working…";
  const started = performance.now();
  const response = await fetch(`/api/card?${params}`);
  if (!response.ok) {
    const error = await response.json().catch(() => ({ error: response.statusText }));
    status.textContent = `error: ${error.error}`;
    status.className = "error";
    return;
  }
  $("card").innerHTML = await response.text();  // the server escapes every text in the fragment
  status.textContent = `done in ${Math.round(performance.now() - started)} ms`;
  status.className = "";
  history.replaceState(null, "", `?${params}`);
}

document.addEventListener("DOMContentLoaded", () => {
  $("user").addEventListener("input", debounce(() => suggest("users", $("user"), $("user-options")), 150));
  $("business").addEventListener("input", debounce(() => suggest("businesses", $("business"), $("business-options")), 150));
  $("pick").addEventListener("submit", show);
  suggest("users", $("user"), $("user-options"));
  suggest("businesses", $("business"), $("business-options"));
  const params = new URLSearchParams(location.search);
  if (params.get("user") && params.get("business")) {
    $("user").value = params.get("user");
    $("business").value = params.get("business");
    if (params.get("k")) $("k").value = params.get("k");
    show();
  }
});
