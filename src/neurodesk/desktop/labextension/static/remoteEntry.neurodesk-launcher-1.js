// A prebuilt JupyterLab extension, hand-written (no bundler): a module-federation container
// that JupyterLab initialises with its shared modules, then asks for "./extension".
// It adds a launcher card that opens the neurodesk tools panel (/neurodesk/) in a tab.
"use strict";
(function () {
  var NAME = "neurodesk-launcher";
  var COMMAND = "neurodesk:open-tools";
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

  var ICON =
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<circle cx="12" cy="12" r="3"/><circle cx="4" cy="6" r="2"/><circle cx="20" cy="6" r="2"/>' +
    '<circle cx="4" cy="18" r="2"/><circle cx="20" cy="18" r="2"/>' +
    '<path d="M5.6 7l4.6 3.4-.8 1.1L4.8 8zm12.8 0l.8 1-4.6 3.5-.8-1.1zM10.2 13.5l.8 1.1L6.4 18l-.8-1zm3.6 0l4.6 3.5-.8 1-4.6-3.4z"/>' +
    "</g></svg>";

  function plugin(launcherPkg, apputils, ui) {
    return {
      id: NAME + ":plugin",
      description: "Opens the neurodesk tools panel from the launcher.",
      autoStart: true,
      requires: [launcherPkg.ILauncher],
      activate: function (app, launcher) {
        var config = JSON.parse(document.getElementById("jupyter-config-data").textContent);
        var url = config.baseUrl + "neurodesk/";
        var icon = new ui.LabIcon({ name: NAME + ":icon", svgstr: ICON });
        var opened = null;
        app.commands.addCommand(COMMAND, {
          label: "Neurodesk tools",
          caption: "Install, load and start the neuroimaging tools",
          icon: icon,
          execute: function () {
            if (opened && !opened.isDisposed) {
              app.shell.activateById(opened.id);
              return opened;
            }
            // Same-origin page of ours: it needs its origin to send the session cookie and the
            // XSRF token, so the frame keeps allow-same-origin.
            var frame = new ui.IFrame({
              sandbox: ["allow-scripts", "allow-same-origin", "allow-forms", "allow-popups"],
            });
            frame.url = url;
            frame.addClass("neurodesk-tools");
            opened = new apputils.MainAreaWidget({ content: frame });
            opened.id = "neurodesk-tools";
            opened.title.label = "Neurodesk tools";
            opened.title.icon = icon;
            opened.title.closable = true;
            app.shell.add(opened, "main");
            return opened;
          },
        });
        launcher.add({ command: COMMAND, category: "Other", rank: 0 });
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
