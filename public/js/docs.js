/*
 * The API reference page (docs.html): renders what the showDocumentation action returns, for
 * people, and lets them call each action over HTTP from its card. No framework; every text
 * from the server goes through textContent, never innerHTML.
 */
"use strict";

(function () {
  const $ = (selector, root) => (root || document).querySelector(selector);

  /** Where actions answer: the generated client knows the configured path (servers.web). */
  function apiBase() {
    if (typeof ActionheroClient === "function") {
      const path = new ActionheroClient().options.apiPath;
      if (path) return path.replace(/\/+$/, "");
    }
    return "/api";
  }

  const API = apiBase();

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function pretty(value) {
    return JSON.stringify(value, null, 2);
  }

  /** Versions in ascending numeric order: "1", "2", "10" (object keys come as strings). */
  function sortedVersions(versions) {
    return Object.keys(versions).sort((a, b) => Number(a) - Number(b));
  }

  function renderInputs(container, inputs) {
    container.replaceChildren();
    const names = Object.keys(inputs || {});
    if (names.length === 0) {
      container.append(element("p", "none", "No inputs."));
      return;
    }
    const table = element("table", "inputs-table");
    const head = table.createTHead().insertRow();
    for (const title of ["Name", "", "Default", "Description"]) {
      head.append(element("th", null, title));
    }
    const body = table.createTBody();
    for (const name of names) {
      const spec = inputs[name];
      const row = body.insertRow();
      row.dataset.input = name;
      row.insertCell().append(element("code", "input-name", name));
      const flag = row.insertCell();
      flag.append(
        element("span", spec.required ? "badge required" : "badge optional",
          spec.required ? "required" : "optional"),
      );
      const fallback = row.insertCell();
      fallback.className = "default";
      if ("default" in spec) fallback.append(element("code", null, JSON.stringify(spec.default)));
      else fallback.append(element("span", "none", "–"));
      row.insertCell().textContent = spec.description || "";
    }
    container.append(table);
  }

  function renderFields(container, inputs) {
    container.replaceChildren();
    for (const name of Object.keys(inputs || {})) {
      const spec = inputs[name];
      const label = element("label", "field");
      const title = element("span", "field-name");
      title.append(element("code", null, name));
      if (spec.required) title.append(element("span", "badge required", "required"));
      const input = element("input", "text-input");
      input.name = name;
      input.placeholder = "default" in spec ? JSON.stringify(spec.default) : spec.description || "";
      label.append(title, input);
      container.append(label);
    }
  }

  /** A field's text as a param value: JSON objects and lists are parsed, the rest is text. */
  function paramValue(text) {
    const trimmed = text.trim();
    if (trimmed.startsWith("{") || trimmed.startsWith("[")) {
      try {
        return JSON.parse(trimmed);
      } catch (error) {
        return text;
      }
    }
    return text;
  }

  async function run(form, name, version) {
    const params = { apiVersion: version };
    for (const input of form.querySelectorAll(".fields input")) {
      if (input.value !== "") params[input.name] = paramValue(input.value);
    }
    const button = $(".run", form);
    const result = $(".result", form);
    const status = $(".http-status", form);
    button.disabled = true;
    const started = performance.now();
    let shown;
    let ok = false;
    try {
      const response = await fetch(API + "/" + encodeURIComponent(name), {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(params),
        credentials: "same-origin",
      });
      ok = response.ok;
      status.textContent = response.status + " " + (response.statusText || "");
      const text = await response.text();
      try {
        shown = pretty(JSON.parse(text));
      } catch (error) {
        shown = text;
      }
    } catch (error) {
      status.textContent = "request failed";
      shown = error.message;
    } finally {
      button.disabled = false;
    }
    status.className = "http-status " + (ok ? "ok" : "bad");
    $(".took", form).textContent = Math.round(performance.now() - started) + " ms";
    $(".reply code", form).textContent = shown;
    result.hidden = false;
  }

  function showVersion(card, name, doc) {
    card.dataset.version = String(doc.version);
    $(".description", card).textContent = doc.description || "No description.";
    renderInputs($(".inputs", card), doc.inputs);
    const chips = $(".middleware", card);
    chips.replaceChildren(...(doc.middleware || []).map((m) => element("li", "chip", m)));
    $(".middleware-block", card).hidden = !(doc.middleware || []).length;
    $(".example-block", card).hidden = doc.outputExample === undefined;
    $(".example code", card).textContent = pretty(doc.outputExample);
    renderFields($(".fields", card), doc.inputs);
    $(".hint", card).hidden = Object.keys(doc.inputs || {}).length === 0;
    $(".result", card).hidden = true;
    for (const tab of card.querySelectorAll(".version")) {
      tab.setAttribute("aria-selected", String(tab.dataset.version === card.dataset.version));
    }
  }

  function renderAction(name, versions) {
    const card = $("#action-template").content.firstElementChild.cloneNode(true);
    const labels = sortedVersions(versions);
    card.id = "action-" + name;
    card.dataset.action = name;
    const anchor = $(".anchor", card);
    anchor.href = "#" + name;
    anchor.textContent = name;
    $(".path", card).textContent = API + "/" + name;
    const tabs = $(".versions", card);
    for (const label of labels) {
      const tab = element("button", "version", "v" + label);
      tab.type = "button";
      tab.setAttribute("role", "tab");
      tab.dataset.version = String(versions[label].version);
      tab.addEventListener("click", () => showVersion(card, name, versions[label]));
      tabs.append(tab);
    }
    const latest = versions[labels[labels.length - 1]];
    showVersion(card, name, latest);
    $(".try", card).addEventListener("submit", (event) => {
      event.preventDefault();
      run(event.currentTarget, name, card.dataset.version);
    });
    return card;
  }

  function renderToc(documentation) {
    const toc = $("#toc");
    for (const name of Object.keys(documentation)) {
      const item = element("li");
      item.dataset.action = name;
      const link = element("a", null, name);
      link.href = "#" + name;
      const count = Object.keys(documentation[name]).length;
      if (count > 1) link.append(element("span", "count", count + " versions"));
      item.append(link);
      toc.append(item);
    }
  }

  function applyFilter() {
    const words = $("#filter").value.trim().toLowerCase();
    let shown = 0;
    for (const card of document.querySelectorAll(".endpoint")) {
      const text = (card.dataset.action + " " + $(".description", card).textContent).toLowerCase();
      const match = !words || text.includes(words);
      card.hidden = !match;
      $('#toc li[data-action="' + CSS.escape(card.dataset.action) + '"]').hidden = !match;
      if (match) shown += 1;
    }
    $("#no-match").hidden = shown > 0;
  }

  function scrollToHash() {
    const name = decodeURIComponent(location.hash.slice(1));
    const card = name && document.getElementById("action-" + name);
    if (card) card.scrollIntoView({ block: "start" });
  }

  /** showDocumentation over HTTP; without that action, the socket's documentation verb. */
  async function fetchDocumentation() {
    const response = await fetch(API + "/showDocumentation", { credentials: "same-origin" });
    const reply = await response.json().catch(() => ({}));
    if (response.ok && reply.documentation) return reply;
    if (response.status !== 404 || typeof ActionheroClient !== "function") {
      throw new Error(reply.error || "HTTP " + response.status);
    }
    const client = new ActionheroClient();
    await new Promise((resolve, reject) =>
      client.connect((error) => (error ? reject(error) : resolve())),
    );
    try {
      const verb = await client.documentation();
      if (verb.error) throw new Error(verb.error);
      return { documentation: verb.data };
    } finally {
      client.disconnect();
    }
  }

  async function load() {
    const status = $("#status");
    $("#api-base").textContent = API;
    let reply;
    try {
      reply = await fetchDocumentation();
    } catch (error) {
      status.textContent = "Could not load the documentation: " + error.message;
      status.classList.add("bad");
      return;
    }
    const documentation = reply.documentation;
    const names = Object.keys(documentation);
    const info = reply.serverInformation;
    if (info) {
      const pill = $("#server");
      pill.textContent = info.serverName + " · API " + info.apiVersion;
      pill.hidden = false;
    }
    status.textContent = names.length + (names.length === 1 ? " action" : " actions");
    renderToc(documentation);
    $("#actions").append(...names.map((name) => renderAction(name, documentation[name])));
    document.body.dataset.loaded = "true";
    scrollToHash();
  }

  $("#filter").addEventListener("input", applyFilter);
  window.addEventListener("hashchange", scrollToHash);
  load();
})();
