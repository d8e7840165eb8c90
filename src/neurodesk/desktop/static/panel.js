// The Neurodesk tools panel (JupyterLab's left sidebar, or /neurodesk/ on its own): search as you
// type, categories as filters, one entry per tool with its versions, and per version install /
// load / unload / uninstall with progress; GUI apps start on the browser desktop.
// Requests carry the session cookie; POSTs echo the _xsrf cookie as Jupyter requires. Every text
// from the server is put into the page as text (textContent), never as HTML.
"use strict";

const state = { data: null, query: "", categories: new Set(), drafts: false, open: new Set() };

function xsrf() {
  const match = document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function api(path, method = "GET", body = undefined) {
  const options = { method, credentials: "same-origin", headers: { "X-XSRFToken": xsrf() } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch("api/" + path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || data.message || response.statusText);
  return data;
}

function say(text, isError = false, progress = undefined) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = isError ? "error" : "";
  const bar = document.getElementById("progress");
  bar.hidden = progress === undefined;
  if (progress === null) bar.removeAttribute("value");
  else if (progress !== undefined) bar.value = progress;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// -- actions -------------------------------------------------------------------------------------
async function runJob(action, tool, version) {
  const label = `${tool.name}/${version.version}`;
  say(`${action} ${label}…`, false, null);
  try {
    let job = await api(action, "POST", { name: tool.name, version: version.version });
    while (job.state === "running") {
      say(`${action} ${label}: ${job.message || "…"}`, false, job.progress);
      await new Promise((resolve) => setTimeout(resolve, 700));
      job = await api("jobs/" + job.id);
    }
    say(job.message, job.state !== "done");
  } catch (error) {
    say(String(error.message || error), true);
  }
  refresh();
}

async function simple(path, body, done) {
  try {
    const result = await api(path, "POST", body);
    say(done(result));
  } catch (error) {
    say(String(error.message || error), true);
  }
  refresh();
}

function openDesktop(relative) {
  const url = new URL(relative, location.href).href;
  // In JupyterLab, the sidebar asks the page around it to open the desktop in a tab.
  if (window.parent !== window) {
    window.parent.postMessage({ type: "neurodesk:open-desktop", url: url }, location.origin);
  } else {
    window.open(url, "_blank");
  }
}

async function startGui(tool, version, app) {
  say(`starting ${app.name.replace(/GUI$/, "")} on the desktop…`, false, null);
  try {
    const result = await api("gui", "POST", { name: tool.name, version: version.version, app: app.name });
    say(`${app.exec} started on desktop ${result.display}`);
    openDesktop(result.url);
  } catch (error) {
    say(String(error.message || error), true);
  }
  refresh();
}

// -- rendering -----------------------------------------------------------------------------------
function versionRow(tool, version) {
  const actions = el("td", { class: "actions" });
  const button = (action, text, handler) =>
    actions.append(el("button", { "data-action": action, onclick: handler }, text));
  if (version.state !== "installed") {
    button("install", version.state === "available" ? "Install" : "Install (built)",
      () => runJob("install", tool, version));
  } else {
    if (version.loaded) {
      button("unload", "Unload", () => simple("unload", { name: tool.name },
        () => `${tool.name} is off PATH in terminals and kernels started from now on`));
    } else {
      button("load", "Load", () => simple("load", { name: tool.name, version: version.version },
        (r) => `${r.loaded} is first on PATH in terminals and kernels started from now on`));
    }
    for (const app of version.gui_apps) {
      button("gui", "▶ " + app.name.replace(/GUI$/, ""), () => startGui(tool, version, app));
    }
    button("uninstall", "Uninstall", () => runJob("uninstall", tool, version));
  }
  const badges = el("td", {}, el("span", { class: "badge " + version.state }, version.state));
  if (version.loaded) badges.append(el("span", { class: "badge loaded" }, "loaded"));
  if (version.kernel) badges.append(el("span", { class: "badge kernel" }, "kernel"));
  return el("tr", { "data-tool": `${tool.name}/${version.version}` },
    el("td", { class: "version" }, version.version), badges, actions);
}

function section(title, ...content) {
  return [el("h3", {}, title), ...content];
}

function details(tool) {
  const box = el("div", { class: "details" });
  if (tool.description) box.append(el("p", {}, tool.description));
  box.append(el("table", { class: "versions" }, ...tool.versions.map((v) => versionRow(tool, v))));
  if (tool.commands.length) box.append(...section("Commands", el("code", {}, tool.commands.join(" "))));
  if (tool.citation) box.append(...section("Citation", el("p", { class: "citation" }, tool.citation)));
  box.append(...section("Licence", el("p", {}, tool.licenses.join(", ") || "not stated")));
  box.append(...section("Comes from", el("p", { class: "sources" }, tool.sources.join(", "))));
  if (tool.readme) box.append(...section("README", el("pre", { class: "readme" }, tool.readme)));
  return box;
}

function entry(tool) {
  const installed = tool.versions.filter((v) => v.state === "installed");
  const badges = el("span", {});
  if (installed.length) badges.append(el("span", { class: "badge installed" }, "installed"));
  if (tool.versions.some((v) => v.loaded)) badges.append(el("span", { class: "badge loaded" }, "loaded"));
  const versions = tool.versions.map((v) => v.version).join(", ");
  const summary = el("div", { class: "summary", role: "button", tabindex: "0" },
    el("img", { class: "icon", alt: "", src: `api/icon/${encodeURIComponent(tool.name)}.svg` }),
    el("div", {}, el("span", { class: "name" }, tool.name), " ",
      el("span", { class: "versions" }, versions),
      el("div", { class: "desc" }, tool.description || tool.category_labels.join(", "))),
    badges);
  const item = el("li", { class: "tool", "data-name": tool.name }, summary);
  const toggle = () => {
    if (state.open.has(tool.name)) state.open.delete(tool.name); else state.open.add(tool.name);
    render();
  };
  summary.onclick = toggle;
  summary.onkeydown = (event) => { if (event.key === "Enter") toggle(); };
  if (state.open.has(tool.name)) item.append(details(tool));
  return item;
}

function matches(tool) {
  if (tool.draft && !state.drafts) return false;
  if (state.categories.size && !tool.categories.some((c) => state.categories.has(c))) return false;
  const haystack = [tool.name, tool.description, ...tool.commands].join(" ").toLowerCase();
  return state.query.split(/\s+/).every((word) => haystack.includes(word));
}

function renderFilters() {
  const box = document.getElementById("filters");
  box.replaceChildren(...state.data.categories.map((category) => {
    const pressed = state.categories.has(category.id);
    return el("button", {
      "data-category": category.id,
      "aria-pressed": String(pressed),
      onclick: () => {
        if (pressed) state.categories.delete(category.id); else state.categories.add(category.id);
        render();
      },
    }, category.label);
  }));
}

function renderDesktop(desktop) {
  const box = document.getElementById("desktop");
  box.replaceChildren();
  if (!desktop.available) {
    box.append("Desktop: not available (install tigervnc-standalone-server, xauth, novnc).");
  } else if (desktop.running) {
    box.append(`Desktop ${desktop.display} is running: `,
      el("button", { id: "open-desktop", onclick: () => openDesktop(desktop.url) }, "Open desktop"), " ",
      el("button", { onclick: () => api("desktop", "DELETE").then(refresh) }, "Stop"));
  } else {
    box.append(el("button", {
      id: "start-desktop",
      onclick: () => api("desktop", "POST").then((d) => { openDesktop(d.url); refresh(); })
        .catch((e) => say(e.message, true)),
    }, "Start desktop"), " for GUI tools");
  }
}

function render() {
  if (!state.data) return;
  renderFilters();
  const list = document.getElementById("tools");
  const shown = state.data.tools.filter(matches);
  list.replaceChildren(...shown.map(entry));
  if (!shown.length) list.append(el("li", { class: "empty" }, "No tool matches."));
  list.setAttribute("aria-busy", "false");
}

async function refresh() {
  try {
    state.data = await api("tools");
    document.getElementById("modulepath").textContent = state.data.modulepath;
    renderDesktop(state.data.desktop);
    for (const problem of state.data.unreachable) say("skipped " + problem, true);
    render();
  } catch (error) {
    document.getElementById("tools").replaceChildren(
      el("li", { class: "error" }, "cannot list tools: " + error.message));
  }
}

document.getElementById("search").oninput = (event) => {
  state.query = event.target.value.trim().toLowerCase();
  render();
};
document.getElementById("show-drafts").onchange = (event) => {
  state.drafts = event.target.checked;
  render();
};
refresh();
