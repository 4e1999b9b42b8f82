// The front end of jobtask_widgets.browsersave.BrowserSave: a plain ES module, no bundler, no
// imports. It shows a link per entry and saves the kernel's files on the user's computer, asking
// the kernel for one chunk at a time over the widget's channel (see the Python module for the
// protocol).

// The message kinds of the save protocol. Python names them in jobtask_widgets/browsersave.py
// (KINDS); tests/unit/test_browsersave.py checks that both sides agree.
export const KINDS = {
  START: "start",
  BEGIN: "begin",
  NEXT: "next",
  CHUNK: "chunk",
  END: "end",
  SAVED: "saved",
  CANCEL: "cancel",
  ERROR: "error",
};

export const WINDOW = 8; // chunks asked for and not yet written, at most (16 MiB)
const PROGRESS_MS = 200; // how often the browser's progress goes back to the kernel
const REVOKE_MS = 60000; // a download link's object URL lives this long after the click

/** Keeps chunks in memory and saves them as one Blob through a download link. */
export class BlobWriter {
  constructor(filename, doc = globalThis.document) {
    this.filename = filename;
    this.doc = doc;
    this.parts = [];
    this.method = "download";
  }
  async write(buffer) {
    // a copy: the view into the message may not outlive it
    const view = buffer instanceof DataView ? new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength) : new Uint8Array(buffer);
    this.parts.push(view.slice());
  }
  async close() {
    const blob = new Blob(this.parts, { type: "application/octet-stream" });
    this.parts = [];
    const url = URL.createObjectURL(blob);
    const link = this.doc.createElement("a");
    link.href = url;
    link.download = this.filename;
    link.style.display = "none";
    this.doc.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), REVOKE_MS);
    return blob.size;
  }
  async abort() {
    this.parts = [];
  }
}

/** Streams chunks to a file the user chose (File System Access API): no whole file in memory. */
export class PickerWriter {
  constructor(writable) {
    this.writable = writable;
    this.size = 0;
    this.method = "file-system-access";
  }
  async write(buffer) {
    this.size += buffer.byteLength;
    await this.writable.write(buffer);
  }
  async close() {
    await this.writable.close();
    return this.size;
  }
  async abort() {
    try {
      await this.writable.abort();
    } catch (err) {
      // already closed or aborted
    }
  }
}

/**
 * A writer for `filename`: the File System Access API when the browser has it and the user has
 * just clicked (it needs that), else a Blob and a download link. Resolves to null when the user
 * dismissed the file picker.
 */
export async function chooseWriter(filename, win = globalThis) {
  const activated = win.navigator && win.navigator.userActivation ? win.navigator.userActivation.isActive : false;
  if (typeof win.showSaveFilePicker === "function" && activated) {
    try {
      const handle = await win.showSaveFilePicker({ suggestedName: filename });
      return new PickerWriter(await handle.createWritable());
    } catch (err) {
      if (err && err.name === "AbortError") return null; // the user said no
      // not allowed here (a sandboxed frame, no activation left): the download link still works
    }
  }
  return new BlobWriter(filename, win.document);
}

/** One transfer, browser side, without DOM: asks for chunks, writes them in order, reports. */
export class Transfer {
  constructor(send, id, writer, { window = WINDOW, onProgress = () => {}, onEnd = () => {} } = {}) {
    this.send = send;
    this.id = id;
    this.writer = writer;
    this.window = window;
    this.onProgress = onProgress;
    this.onEnd = onEnd;
    this.asked = 0; // chunks asked for
    this.queued = 0; // chunks handed to the writer, in seq order
    this.early = new Map(); // seq -> bytes of chunks that came before an earlier one
    this.written = 0; // chunks written
    this.bytes = 0; // bytes written
    this.total = 0;
    this.last = null; // the number of chunks, once the kernel said there is no more
    this.state = "waiting"; // waiting, sending, saved, cancelled, error
    this.queue = Promise.resolve();
  }

  start(entry) {
    this.state = "sending";
    this.send({ kind: KINDS.START, id: this.id, entry });
  }

  ask() {
    while (this.state === "sending" && this.last === null && this.asked - this.written < this.window) {
      this.send({ kind: KINDS.NEXT, id: this.id, seq: this.asked });
      this.asked += 1;
    }
  }

  /** Route a message of the kernel; returns what became of it. */
  receive(msg, buffers) {
    if (!msg || msg.id !== this.id) return "ignored";
    if (this.state !== "sending") return "over";
    switch (msg.kind) {
      case KINDS.BEGIN:
        this.total = Number(msg.total) || 0;
        this.onProgress(this);
        this.ask();
        return "begun";
      case KINDS.CHUNK: {
        const buffer = buffers && buffers[0];
        const seq = Number(msg.seq);
        if (!buffer || !Number.isInteger(seq) || seq < this.queued || this.early.has(seq)) {
          this.fail(buffer ? `chunk ${msg.seq} came twice or was never asked for` : "a chunk came without its bytes");
          return "error";
        }
        this.early.set(seq, buffer);
        while (this.early.has(this.queued)) {
          const next = this.early.get(this.queued);
          this.early.delete(this.queued);
          this.queued += 1;
          this.queue = this.queue.then(() => this.write(next));
        }
        return "chunk";
      }
      case KINDS.END:
        this.last = Number(msg.seq);
        this.queue = this.queue.then(() => this.maybeClose());
        return "end";
      case KINDS.ERROR:
        this.stop("error", String(msg.message));
        return "error";
      case KINDS.CANCEL:
        this.stop("cancelled", "Cancelled in the kernel; nothing was saved.");
        return "cancelled";
      default:
        return "ignored";
    }
  }

  async write(buffer) {
    if (this.state !== "sending") return;
    try {
      await this.writer.write(buffer);
    } catch (err) {
      this.fail(`the browser could not write the file: ${err && err.message ? err.message : err}`);
      return;
    }
    this.written += 1;
    this.bytes += buffer.byteLength;
    this.onProgress(this);
    this.ask();
    await this.maybeClose();
  }

  async maybeClose() {
    if (this.state !== "sending" || this.last === null || this.written < this.last) return;
    this.state = "closing";
    const size = await this.writer.close();
    this.state = "saved";
    this.send({ kind: KINDS.SAVED, id: this.id, size });
    this.onEnd(this, "saved", `Saved ${this.writer.filename || "the file"}`);
  }

  /** Cancel from the browser: the kernel is told and frees its side; nothing is saved. */
  cancel() {
    if (this.state !== "sending" && this.state !== "waiting") return;
    this.send({ kind: KINDS.CANCEL, id: this.id });
    this.stop("cancelled", "Cancelled; nothing was saved.");
  }

  fail(message) {
    if (this.state !== "sending") return;
    this.send({ kind: KINDS.CANCEL, id: this.id });
    this.stop("error", message);
  }

  stop(state, message) {
    this.state = state;
    this.writer.abort();
    this.onEnd(this, state, message);
  }
}

/** `12.3 MB`-style sizes (powers of 1024), as taskinfo.size_text writes them in Python. */
export function sizeText(size) {
  if (size < 1024) return `${size} B`;
  let value = size / 1024;
  for (const unit of ["KB", "MB"]) {
    if (value < 1024) return `${value.toFixed(1)} ${unit}`;
    value /= 1024;
  }
  return `${value.toFixed(1)} GB`;
}

const STYLE = `
.jobtask-save { font-size: var(--jp-ui-font-size1, 13px); color: var(--jp-ui-font-color1, inherit); margin: 4px 0; }
.jobtask-save a { color: var(--jp-content-link-color, #0969da); cursor: pointer; margin-right: 10px; }
.jobtask-save a[aria-disabled="true"] { opacity: 0.5; pointer-events: none; }
.jobtask-save-progress { display: flex; gap: 8px; align-items: center; margin-top: 4px; }
.jobtask-save-progress[hidden] { display: none; }
.jobtask-save-progress progress { flex: 1 1 auto; max-width: 320px; }
.jobtask-save-message.error { color: #d1242f; }
`;

// The saves of this page, by the model's `key`: anywidget hands each view (and `initialize`)
// its own proxy of the model, and front ends re-create views (JupyterLab renders an output
// again), so a save belongs to the model, not to a view.
const saves = new Map();

/** The save state of `model`: its transfer, the views to redraw, whether it autostarted. */
export function saveState(model) {
  const key = model.get("key");
  if (!saves.has(key)) saves.set(key, { transfer: null, counter: 0, listeners: new Set(), autostarted: false });
  return saves.get(key);
}

/**
 * Start saving entry `index` of the model (after a click, or on display with autostart); `state`
 * is the model's save state (see `saveState`), whose transfer gets the kernel's messages.
 */
export async function startSave(model, index, state, win = globalThis) {
  if (state.transfer) state.transfer.cancel();
  const entry = (model.get("entries") || [])[index];
  if (!entry) return null;
  const writer = await chooseWriter(entry.filename, win);
  if (!writer) return null; // the user dismissed the picker
  writer.filename = entry.filename;
  state.counter = (state.counter || 0) + 1;
  const id = `${Math.random().toString(36).slice(2, 8)}-${state.counter}`;
  const notify = () => state.listeners.forEach((fn) => fn());
  let reported = 0;
  const transfer = new Transfer((msg) => model.send(msg), id, writer, {
    onProgress: (tr) => {
      const now = Date.now();
      if (now - reported >= PROGRESS_MS || tr.bytes >= tr.total) {
        reported = now; // a message per chunk back to the kernel would slow the transfer down
        model.set("received", tr.bytes);
        model.set("method", writer.method);
        model.save_changes();
      }
      notify();
    },
    onEnd: (tr, status, message) => {
      tr.endMessage = message;
      model.set("received", tr.bytes);
      model.save_changes();
      notify();
    },
  });
  transfer.filename = entry.filename;
  state.transfer = transfer;
  transfer.start(index);
  notify();
  return transfer;
}

export default {
  initialize({ model }) {
    const state = saveState(model);
    const onMessage = (msg, buffers) => {
      if (state.transfer) state.transfer.receive(msg, buffers);
    };
    model.on("msg:custom", onMessage);
    return () => {
      model.off("msg:custom", onMessage);
      if (state.transfer) state.transfer.cancel();
      saves.delete(model.get("key"));
    };
  },

  render({ model, el }) {
    const state = saveState(model);
    const root = document.createElement("div");
    root.className = "jobtask-save";
    const style = document.createElement("style");
    style.textContent = STYLE;
    const links = document.createElement("div");
    links.className = "jobtask-save-links";
    const bar = document.createElement("div");
    bar.className = "jobtask-save-progress";
    bar.hidden = true;
    const progress = document.createElement("progress");
    const text = document.createElement("span");
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.textContent = "Cancel";
    cancel.className = "jobtask-save-cancel";
    cancel.addEventListener("click", () => state.transfer && state.transfer.cancel());
    bar.append(progress, text, cancel);
    const message = document.createElement("div");
    message.className = "jobtask-save-message";
    message.setAttribute("role", "status");
    root.append(style, links, bar, message);
    el.appendChild(root);

    const drawLinks = () => {
      links.replaceChildren();
      const entries = model.get("entries") || [];
      if (entries.length) links.append(document.createTextNode(`${model.get("title")} `));
      entries.forEach((entry, index) => {
        const link = document.createElement("a");
        link.className = "jobtask-save-link";
        link.href = "#";
        link.textContent = entry.label; // text, never HTML
        link.title = `Save ${entry.filename} (${sizeText(entry.size)}) on your computer`;
        link.dataset.filename = entry.filename;
        link.addEventListener("click", (event) => {
          event.preventDefault();
          startSave(model, index, state).catch((err) => console.warn("jobtask-widgets: the save did not start:", err));
        });
        links.append(link);
      });
    };
    const drawProgress = () => {
      const tr = state.transfer;
      const sending = Boolean(tr) && tr.state === "sending";
      bar.hidden = !sending;
      if (tr) {
        progress.max = Math.max(tr.total, 1);
        progress.value = Math.min(tr.bytes, progress.max);
        text.textContent = `Saving ${tr.filename}: ${sizeText(tr.bytes)} of ${sizeText(tr.total)}`;
      }
      const kernelMessage = model.get("message");
      const finished = tr && !sending && tr.state !== "closing" ? tr.endMessage : "";
      message.textContent = finished || (tr ? "" : kernelMessage);
      message.classList.toggle("error", Boolean(tr && tr.state === "error"));
      links.querySelectorAll("a").forEach((a) => a.setAttribute("aria-disabled", String(sending)));
      root.dataset.state = tr ? tr.state : model.get("status");
    };
    state.listeners.add(drawProgress);
    model.on("change:entries", drawLinks);
    model.on("change:message", drawProgress);
    drawLinks();
    drawProgress();
    if (model.get("autostart") && !state.autostarted) {
      state.autostarted = true; // once, however many views show it
      startSave(model, 0, state).catch((err) => console.warn("jobtask-widgets: the save did not start:", err));
    }
    return () => {
      state.listeners.delete(drawProgress);
      model.off("change:entries", drawLinks);
      model.off("change:message", drawProgress);
    };
  },
};
