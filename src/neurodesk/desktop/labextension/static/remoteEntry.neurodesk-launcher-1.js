// A prebuilt JupyterLab extension, hand-written (no bundler): a module-federation container
// that JupyterLab initialises with its shared modules, then asks for "./extension".
// It adds the Neurodesk tools panel to the left sidebar, and launcher cards for the panel and for
// the browser desktop (opened in a tab; GUI apps started from the panel draw on it).
"use strict";
(function () {
  var NAME = "neurodesk-launcher";
  var OPEN_TOOLS = "neurodesk:open-tools";
  var OPEN_DESKTOP = "neurodesk:open-desktop";
  var shared = null;

  // The newest version of a package JupyterLab shares, as the very module instance it uses
  // (plugin tokens are compared by identity).
  function load(pkg) {
    var versions = shared && shared[pkg];
    if (!versions) return Promise.reject(new Error(NAME + ": JupyterLab does not share " + pkg));
    var newest = Object.keys(versions).sort(function (a, b) {
      return a.localeCompare(b, undefined, { numeric: true });
    }).pop();
    return Promise.resolve(versions[newest].get()).then(function (factory) { return factory(); });
  }

  var TOOLS_ICON =
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<circle cx="12" cy="12" r="3"/><circle cx="4" cy="6" r="2"/><circle cx="20" cy="6" r="2"/>' +
    '<circle cx="4" cy="18" r="2"/><circle cx="20" cy="18" r="2"/>' +
    '<path d="M5.6 7l4.6 3.4-.8 1.1L4.8 8zm12.8 0l.8 1-4.6 3.5-.8-1.1zM10.2 13.5l.8 1.1L6.4 18l-.8-1zm3.6 0l4.6 3.5-.8 1-4.6-3.4z"/>' +
    "</g></svg>";
  var DESKTOP_ICON =
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<path d="M3 4h18a1 1 0 0 1 1 1v11a1 1 0 0 1-1 1h-7v2h3v2H7v-2h3v-2H3a1 1 0 0 1-1-1V5a1 1 0 0 1 1-1zm1 2v9h16V6z"/>' +
    '<path d="M5 7h5v3H5z"/></g></svg>';

  function xsrf() {
    var match = document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function plugin(launcherPkg, apputils, ui) {
    return {
      id: NAME + ":plugin",
      description: "The Neurodesk tools sidebar and the browser desktop.",
      autoStart: true,
      requires: [launcherPkg.ILauncher],
      activate: function (app, launcher) {
        var config = JSON.parse(document.getElementById("jupyter-config-data").textContent);
        var base = config.baseUrl + "neurodesk/";
        var toolsIcon = new ui.LabIcon({ name: NAME + ":tools", svgstr: TOOLS_ICON });
        var desktopIcon = new ui.LabIcon({ name: NAME + ":desktop", svgstr: DESKTOP_ICON });

        // Same-origin pages of ours: they need their origin to send the session cookie and the
        // XSRF token, so the frames keep allow-same-origin.
        var sandbox = ["allow-scripts", "allow-same-origin", "allow-forms", "allow-popups",
          "allow-downloads"];
        var sidebar = new ui.IFrame({ sandbox: sandbox });
        sidebar.url = base;
        sidebar.id = "neurodesk-tools";
        sidebar.addClass("neurodesk-tools");
        sidebar.title.icon = toolsIcon;
        sidebar.title.caption = "Neurodesk tools";
        app.shell.add(sidebar, "left", { rank: 600 });

        var desktop = null;
        function showDesktop(url) {
          if (desktop && !desktop.isDisposed) {
            if (url && desktop.content.url !== url) desktop.content.url = url;
            app.shell.activateById(desktop.id);
            return desktop;
          }
          var frame = new ui.IFrame({ sandbox: sandbox.concat(["allow-pointer-lock"]) });
          frame.url = url;
          frame.addClass("neurodesk-desktop");
          desktop = new apputils.MainAreaWidget({ content: frame });
          desktop.id = "neurodesk-desktop";
          desktop.title.label = "Desktop";
          desktop.title.icon = desktopIcon;
          desktop.title.closable = true;
          app.shell.add(desktop, "main");
          return desktop;
        }

        app.commands.addCommand(OPEN_TOOLS, {
          label: "Neurodesk tools",
          caption: "Search, install, load and start the neuroimaging tools",
          icon: toolsIcon,
          execute: function () {
            app.shell.activateById(sidebar.id);
            return sidebar;
          },
        });
        app.commands.addCommand(OPEN_DESKTOP, {
          label: "Desktop",
          caption: "A desktop in the browser, with every tool in its menu",
          icon: desktopIcon,
          execute: function () {
            return fetch(base + "api/desktop", {
              method: "POST",
              credentials: "same-origin",
              headers: { "X-XSRFToken": xsrf() },
            }).then(function (response) {
              return response.json().then(function (data) {
                if (!response.ok) throw new Error(data.error || response.statusText);
                return showDesktop(new URL(data.url, location.origin + base).href);
              });
            });
          },
        });
        launcher.add({ command: OPEN_DESKTOP, category: "Neurodesk", rank: 0 });
        launcher.add({ command: OPEN_TOOLS, category: "Neurodesk", rank: 1 });

        // The sidebar (same origin) asks for the desktop tab after starting a GUI app.
        window.addEventListener("message", function (event) {
          var data = event.data;
          if (event.origin !== location.origin || !data || data.type !== OPEN_DESKTOP) return;
          var url = new URL(String(data.url), location.origin);
          if (url.origin !== location.origin || url.pathname.indexOf(base) !== 0) return;
          showDesktop(url.href);
        });
      },
    };
  }

  var container = {
    init: function (shareScope) {
      shared = shareScope;
    },
    get: function (module) {
      if (module !== "./extension") {
        return Promise.reject(new Error(NAME + " has no module " + module));
      }
      return Promise.all([
        load("@jupyterlab/launcher"),
        load("@jupyterlab/apputils"),
        load("@jupyterlab/ui-components"),
      ]).then(function (pkgs) {
        var exports = { __esModule: true, default: [plugin(pkgs[0], pkgs[1], pkgs[2])] };
        return function () { return exports; };
      });
    },
  };
  window._JUPYTERLAB = window._JUPYTERLAB || {};
  window._JUPYTERLAB[NAME] = container;
})();
