// The Neurodesk tools panel: lists /neurodesk/api/tools by category and drives install/load.
// Requests carry the session cookie; POSTs echo the _xsrf cookie as Jupyter requires.
"use strict";

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

function say(text, isError = false) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = isError ? "error" : "";
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "onclick") node.onclick = value; else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function install(tool) {
  say(`installing ${tool.name}/${tool.version}` + (tool.state === "available" ? " (building the image first)…" : "…"));
  try {
    let job = await api("install", "POST", { name: tool.name, version: tool.version });
    while (job.state === "running") {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      job = await api("jobs/" + job.id);
    }
    say(job.message, job.state !== "done");
  } catch (error) {
    say(String(error.message || error), true);
  }
  refresh();
}

async function load(tool) {
  try {
    const result = await api("load", "POST", { name: tool.name, version: tool.version });
    say(`${result.loaded} is first on PATH in terminals opened from now on`);
  } catch (error) {
    say(String(error.message || error), true);
  }
  refresh();
}

async function openGui(tool, app) {
  try {
    const result = await api("gui", "POST", { name: tool.name, version: tool.version, app: app.name });
    say(`${app.exec} started on desktop ${result.display}`);
    window.open(result.url, "_blank");
  } catch (error) {
    say(String(error.message || error), true);
  }
  refresh();
}

function row(tool) {
  const actions = el("td", { class: "actions" });
  if (tool.state !== "installed") {
    actions.append(el("button", { onclick: () => install(tool), "data-action": "install" }, "Install"));
  } else if (!tool.loaded) {
    actions.append(el("button", { onclick: () => load(tool), "data-action": "load" }, "Load"));
  }
  if (tool.state === "installed") {
    for (const app of tool.gui_apps) {
      actions.append(el("button", { onclick: () => openGui(tool, app), "data-action": "gui" },
        app.name.replace(/GUI$/, "")));
    }
  }
  const state = el("span", { class: "state state-" + tool.state }, tool.state);
  const cells = [state];
  if (tool.loaded) cells.push(" ", el("span", { class: "state loaded" }, "loaded"));
  if (tool.kernel) cells.push(" ", el("span", { class: "state loaded" }, "kernel"));
  return el("tr", { "data-tool": `${tool.name}/${tool.version}` },
    el("td", { class: "name" }, tool.name),
    el("td", { class: "version" }, tool.version),
    el("td", { class: "state-cell" }, ...cells),
    el("td", { class: "commands" }, tool.commands.join(" ")),
    actions);
}

function renderDesktop(desktop) {
  const box = document.getElementById("desktop");
  box.replaceChildren();
  if (!desktop.available) {
    box.append("Browser desktop: not available (install tigervnc-standalone-server, xauth, novnc).");
  } else if (desktop.running) {
    box.append(`Desktop ${desktop.display} is running: `,
      el("a", { href: desktop.url, target: "_blank", id: "open-desktop" }, "open it"), " ",
      el("button", { onclick: () => api("desktop", "DELETE").then(refresh) }, "Stop desktop"));
  } else {
    box.append(el("button", {
      id: "start-desktop",
      onclick: () => api("desktop", "POST").then(refresh).catch((e) => say(e.message, true)),
    }, "Start desktop"), " for GUI tools (terminals opened afterwards draw on it)");
  }
}

async function refresh() {
  const main = document.getElementById("categories");
  try {
    const data = await api("tools");
    document.getElementById("modulepath").textContent = data.modulepath;
    renderDesktop(data.desktop);
    main.replaceChildren();
    for (const [category, tools] of Object.entries(data.categories)) {
      main.append(el("section", { class: "category", "data-category": category },
        el("h2", {}, category), el("table", {}, ...tools.map(row))));
    }
    if (!Object.keys(data.categories).length) main.append("No tools: add recipes or build images.");
  } catch (error) {
    main.replaceChildren(el("p", { class: "error" }, "cannot list tools: " + error.message));
  }
  main.setAttribute("aria-busy", "false");
}

refresh();
