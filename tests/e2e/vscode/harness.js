// The page side of the VS Code harness (tests/e2e/vscodeharness.py): what VS Code's Jupyter
// extension does in a notebook's output webview to draw widgets, with the same npm package.
//
// - VS Code's renderer, @vscode/jupyter-ipywidgets8 (dist/ipywidgets.js): activate(), load(),
//   then its WidgetManager(kernel, element, scriptLoader, logger);
// - the kernel: a @jupyterlab/services KernelConnection whose websocket is a relay: every frame,
//   both ways, crosses as a JSON string through a MessageChannel, binary frames as base64 (VS Code's
//   extension host holds the real socket and posts each frame to the webview as a message);
// - third-party widget modules load the way VS Code loads them for a local kernel: a requirejs path
//   to <kernel's sys.prefix>/share/jupyter/nbextensions/<module>/index.js (served here), no CDN;
// - each cell's outputs are drawn as VS Code draws them: the widget mime type through the manager
//   (get_model, create_view, display_view, as microsoft/vscode-jupyter's renderWidget does), in an
//   element with VS Code's white widget background; image/png as <img>, text/html, text/plain as <pre>.
//
// Query parameters: server, token (the Jupyter server), nbext (the folder of widget modules),
// theme=dark (VS Code's dark theme variables).

import { activate } from "./npm/@vscode/jupyter-ipywidgets8/dist/ipywidgets.js";
import { KernelManager, ServerConnection } from "./bundle/services.js";

const WIDGET_MIMETYPE = "application/vnd.jupyter.widget-view+json";
const params = new URLSearchParams(location.search);
const serverUrl = params.get("server");
const token = params.get("token") || "";
const nbextensions = new URL(`${params.get("nbext") || "nbextensions"}/`, location.href).href;
const theme = params.get("theme") === "dark" ? "vscode-dark" : "vscode-light";
document.documentElement.classList.add(theme);
document.body.classList.add(theme);
document.body.dataset.vscodeThemeKind = theme;

const harness = {
  logs: [],
  loadErrors: [],
  loaded: [],
  protocols: [], // the kernel websocket protocol of each connection
  frames: { toKernel: { text: 0, binary: 0 }, fromKernel: { text: 0, binary: 0, binaryBytes: 0 } },
  kernel: null,
  manager: null,
};
window.harness = harness;
const log = (message) => harness.logs.push(String(message));

// ---- the relay: JSON strings, binary as base64 ----

function toBase64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

function fromBase64(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

/** A websocket frame as a JSON string (what crosses VS Code's post office). */
function serializeFrame(event, data) {
  if (typeof data === "string") return JSON.stringify({ event, type: "text", data });
  const view = ArrayBuffer.isView(data)
    ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    : new Uint8Array(data);
  return JSON.stringify({ event, type: "binary", base64: toBase64(view), byteLength: view.byteLength });
}

/** The frame rebuilt on the other side: a string, or a fresh ArrayBuffer. */
function deserializeFrame(frame) {
  if (frame.type === "text") return frame.data;
  const bytes = fromBase64(frame.base64);
  if (bytes.byteLength !== frame.byteLength) throw new Error("a binary frame lost bytes in the relay");
  return bytes.buffer;
}

/** What @jupyterlab/services gets as its WebSocket: the real socket is on the other side of a relay. */
class RelayWebSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;

  constructor(url, protocols) {
    this.url = url;
    this.binaryType = "arraybuffer";
    this.protocol = "";
    this.readyState = RelayWebSocket.CONNECTING;
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    const down = new MessageChannel(); // socket -> kernel connection
    const up = new MessageChannel(); // kernel connection -> socket
    const real = new WebSocket(url, protocols);
    real.binaryType = "arraybuffer";
    this._real = real;
    this._up = up.port1;
    const post = (text) => down.port1.postMessage(text);
    real.onopen = () => post(JSON.stringify({ event: "open", protocol: real.protocol }));
    real.onmessage = (e) => post(serializeFrame("message", e.data));
    real.onclose = (e) => post(JSON.stringify({ event: "close", code: e.code, reason: e.reason, wasClean: e.wasClean }));
    real.onerror = () => post(JSON.stringify({ event: "error" }));
    down.port2.onmessage = (e) => this._receive(JSON.parse(e.data));
    up.port2.onmessage = (e) => {
      const data = deserializeFrame(JSON.parse(e.data));
      if (real.readyState === WebSocket.OPEN) real.send(data);
    };
  }

  _receive(message) {
    if (message.event === "open") {
      this.protocol = message.protocol;
      harness.protocols.push(message.protocol);
      this.readyState = RelayWebSocket.OPEN;
      if (this.onopen) this.onopen({ type: "open", target: this });
    } else if (message.event === "message") {
      const data = deserializeFrame(message);
      if (typeof data === "string") {
        harness.frames.fromKernel.text++;
      } else {
        harness.frames.fromKernel.binary++;
        harness.frames.fromKernel.binaryBytes += data.byteLength;
      }
      if (this.onmessage) this.onmessage({ type: "message", data, target: this });
    } else if (message.event === "close") {
      this.readyState = RelayWebSocket.CLOSED;
      if (this.onclose) this.onclose({ type: "close", code: message.code, reason: message.reason, wasClean: message.wasClean, target: this });
    } else if (message.event === "error") {
      if (this.onerror) this.onerror({ type: "error", target: this });
    }
  }

  send(data) {
    if (typeof data === "string") harness.frames.toKernel.text++;
    else harness.frames.toKernel.binary++;
    this._up.postMessage(serializeFrame("message", data));
  }

  close(code, reason) {
    this.readyState = RelayWebSocket.CLOSING;
    this._real.close(code, reason);
  }
}

// ---- widget modules: VS Code's script loader, offline ----

function showLoadError(text) {
  const banner = document.createElement("div");
  banner.className = "widget-load-error";
  banner.textContent = text;
  document.getElementById("widget-load-errors").appendChild(banner);
}

const widgetsRegisteredInRequireJs = new Set();
const scriptLoader = {
  widgetsRegisteredInRequireJs,
  async loadWidgetScript(moduleName, moduleVersion) {
    const url = `${nbextensions}${moduleName}/index.js`;
    let found = false;
    try {
      found = (await fetch(url, { method: "HEAD", cache: "no-store" })).ok;
    } catch (err) {
      found = false;
    }
    if (!found) {
      log(`no source for ${moduleName}@${moduleVersion}: ${url}`);
      throw new Error(`Source for the widget module ${moduleName}@${moduleVersion} not found (${url}); no CDN`);
    }
    // microsoft/vscode-jupyter, requirejsRegistry.ts: the script's URL without ".js"
    window.requirejs.config({ paths: { [moduleName]: url.slice(0, -3) } });
    widgetsRegisteredInRequireJs.add(moduleName);
    log(`registered ${moduleName}@${moduleVersion} at ${url}`);
  },
  successHandler(className, moduleName, moduleVersion) {
    harness.loaded.push(`${moduleName}@${moduleVersion}:${className}`);
  },
  errorHandler(className, moduleName, moduleVersion, error) {
    const text = `Failed to load the widget ${className} from ${moduleName}@${moduleVersion}: ${error && error.message ? error.message : error}`;
    harness.loadErrors.push(text);
    showLoadError(text);
  },
};

// ---- outputs, as VS Code draws them ----

function errorText(err) {
  return err && err.message ? err.message : String(err);
}

async function renderWidget(data, element) {
  const manager = harness.manager;
  if (!data || data.version_major !== 2) throw new Error("not an ipywidgets 8 view");
  const model = await manager.get_model(data.model_id);
  const view = await manager.create_view(model, { el: element });
  return manager.display_view(data, view, { node: element });
}

/** Draw one mime bundle into `node`; VS Code's order: the widget, HTML, PNG, text. */
function renderBundle(bundle, node) {
  if (bundle[WIDGET_MIMETYPE]) {
    const background = document.createElement("div");
    background.className = "cell-output-ipywidget-background";
    const output = document.createElement("div");
    output.className = "cell-output cell-output";
    background.appendChild(output);
    node.appendChild(background);
    const model = bundle[WIDGET_MIMETYPE];
    return renderWidget(model, background).catch((err) => {
      const shown = document.createElement("div");
      shown.className = "widget-load-error";
      shown.textContent = `Failed to render the widget ${model.model_id}: ${errorText(err)}`;
      node.appendChild(shown);
      log(shown.textContent);
    });
  }
  if (bundle["text/html"] !== undefined) {
    const html = document.createElement("div");
    html.className = "cell-output-html";
    html.innerHTML = [].concat(bundle["text/html"]).join("");
    node.appendChild(html);
  } else if (bundle["image/png"] !== undefined) {
    const img = document.createElement("img");
    img.className = "cell-output-image";
    img.src = `data:image/png;base64,${[].concat(bundle["image/png"]).join("").trim()}`;
    node.appendChild(img);
  } else if (bundle["text/plain"] !== undefined) {
    const pre = document.createElement("pre");
    pre.className = "cell-output-text";
    pre.textContent = [].concat(bundle["text/plain"]).join("");
    node.appendChild(pre);
  }
  return Promise.resolve();
}

function makeOutput(container) {
  const node = document.createElement("div");
  node.className = "cell-output-item";
  container.appendChild(node);
  return node;
}

const displays = new Map(); // display_id -> output nodes
let cellCount = 0;

/** Execute `code` in the kernel and draw its outputs in a new cell; resolves with the reply. */
async function runCell(code) {
  await harness.ready;
  const kernel = harness.kernel;
  const cell = document.createElement("div");
  cell.className = "cell";
  cell.dataset.index = String(++cellCount);
  const outputs = document.createElement("div");
  outputs.className = "cell-outputs";
  cell.appendChild(outputs);
  document.getElementById("cells").appendChild(cell);
  let clearOnNext = false;
  const clear = () => {
    outputs.replaceChildren();
    clearOnNext = false;
  };
  const future = kernel.requestExecute({ code, stop_on_error: true, store_history: true });
  future.onIOPub = (msg) => {
    const type = msg.header.msg_type;
    const content = msg.content;
    if (type === "clear_output") {
      if (content.wait) clearOnNext = true;
      else clear();
      return;
    }
    if (["stream", "display_data", "execute_result", "error", "update_display_data"].includes(type) && clearOnNext) clear();
    if (type === "stream") {
      const pre = document.createElement("pre");
      pre.className = `cell-output-stream stream-${content.name}`;
      pre.textContent = content.text;
      outputs.appendChild(pre);
    } else if (type === "display_data" || type === "execute_result") {
      const node = makeOutput(outputs);
      const displayId = content.transient && content.transient.display_id;
      if (displayId) displays.set(displayId, [...(displays.get(displayId) || []), node]);
      renderBundle(content.data, node);
    } else if (type === "update_display_data") {
      const displayId = content.transient && content.transient.display_id;
      for (const node of displays.get(displayId) || []) {
        node.replaceChildren();
        renderBundle(content.data, node);
      }
    } else if (type === "error") {
      const pre = document.createElement("pre");
      pre.className = "cell-output-error";
      pre.textContent = `${content.ename}: ${content.evalue}`;
      outputs.appendChild(pre);
    }
  };
  const reply = await future.done;
  return { status: reply.content.status, ename: reply.content.ename || "", evalue: reply.content.evalue || "" };
}

// ---- start: the renderer, the kernel, the manager ----

async function start() {
  activate();
  window.vscIPyWidgets8.load();
  // microsoft/vscode-jupyter, requirejsRegistry.ts: registerCustomScripts
  window.requirejs.config({ map: { "*": { "jupyter-js-widgets": "@jupyter-widgets/base" } } });
  document.body.dataset.baseUrl = `${serverUrl}/`;
  const serverSettings = ServerConnection.makeSettings({
    baseUrl: `${serverUrl}/`,
    wsUrl: `${serverUrl.replace(/^http/, "ws")}/`,
    token,
    appendToken: true,
    WebSocket: RelayWebSocket,
  });
  const kernelManager = new KernelManager({ serverSettings });
  await kernelManager.ready;
  const kernel = await kernelManager.startNew({ name: "python3" });
  await kernel.info;
  harness.kernelManager = kernelManager;
  harness.kernel = kernel;
  const { WidgetManager } = window.vscIPyWidgets;
  const manager = new WidgetManager(kernel, document.getElementById("cells"), scriptLoader, log);
  // Outputs nested in an Output widget go back to VS Code's own renderers (kernel/manager.ts)
  manager.registerMimeRenderer(WIDGET_MIMETYPE, async ({ data }, node) => {
    await renderBundle({ [WIDGET_MIMETYPE]: data[WIDGET_MIMETYPE] }, node);
  });
  for (const mime of ["text/html", "image/png", "text/plain"]) {
    manager.registerMimeRenderer(mime, async ({ data }, node) => {
      await renderBundle({ [mime]: data[mime] }, node);
    });
  }
  harness.manager = manager;
  return true;
}

harness.ready = start();
harness.ready.then(
  () => document.body.classList.add("harness-ready"),
  (err) => {
    harness.startError = errorText(err);
    showLoadError(`The harness could not start: ${harness.startError}`);
  },
);
window.runCell = runCell;
window.shutdownKernel = async () => {
  if (harness.kernel) await harness.kernel.shutdown();
};
