// Tests of the save front end's logic (no DOM): the chunk protocol with a fake kernel and writer.
//   node --test js/tests/
import assert from "node:assert/strict";
import { test } from "node:test";

import { KINDS, Transfer, WINDOW, chooseWriter, sizeText } from "../../jobtask_widgets/js/browsersave.js";

class FakeWriter {
  constructor() { this.chunks = []; this.closed = false; this.aborted = false; this.filename = "x.zip"; }
  async write(buffer) { await new Promise((r) => setTimeout(r, 1)); this.chunks.push(buffer); }
  async close() { this.closed = true; return this.chunks.reduce((n, c) => n + c.byteLength, 0); }
  async abort() { this.aborted = true; }
}

const settle = () => new Promise((r) => setTimeout(r, 30));
// wait until `check()` holds (the writes are asynchronous), at most 5 s: no fixed pause to race
async function until(check, timeout = 5000) {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeout) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}
const chunk = (n) => new DataView(new Uint8Array(n).fill(7).buffer);

test("asks for at most WINDOW chunks ahead, writes in order, closes after the end and says saved", async () => {
  const sent = [];
  const writer = new FakeWriter();
  const ends = [];
  const tr = new Transfer((m) => sent.push(m), "t", writer, { onEnd: (_, state) => ends.push(state) });
  tr.start(2);
  assert.deepEqual(sent, [{ kind: KINDS.START, id: "t", entry: 2 }]);
  assert.equal(tr.receive({ kind: KINDS.BEGIN, id: "t", total: 10 }), "begun");
  assert.deepEqual(sent.slice(1).map((m) => m.seq), [...Array(WINDOW).keys()]);
  assert.equal(tr.receive({ kind: KINDS.CHUNK, id: "t", seq: 0 }, [chunk(4)]), "chunk");
  assert.equal(tr.receive({ kind: KINDS.CHUNK, id: "t", seq: 1 }, [chunk(6)]), "chunk");
  const nexts = () => sent.filter((m) => m.kind === KINDS.NEXT);
  await until(() => nexts().length >= WINDOW + 2); // each written chunk asks for one more: still WINDOW ahead
  await settle(); // and no more than that
  assert.deepEqual(nexts().map((m) => m.seq), [...Array(WINDOW + 2).keys()]);
  assert.equal(tr.receive({ kind: KINDS.END, id: "t", seq: 2, size: 10 }), "end");
  await until(() => tr.state === "saved");
  assert.equal(writer.chunks.length, 2);
  assert.ok(writer.closed);
  assert.equal(tr.state, "saved");
  assert.equal(tr.bytes, 10);
  assert.deepEqual(sent.at(-1), { kind: KINDS.SAVED, id: "t", size: 10 });
  assert.deepEqual(ends, ["saved"]);
  assert.equal(sent.filter((m) => m.kind === KINDS.NEXT).length, WINDOW + 2); // none after the end
});

test("messages of another transfer are ignored", () => {
  const tr = new Transfer(() => {}, "t", new FakeWriter());
  tr.start(0);
  assert.equal(tr.receive({ kind: KINDS.CHUNK, id: "other", seq: 0 }, [chunk(1)]), "ignored");
  assert.equal(tr.receive(null), "ignored");
});

test("cancel in the browser tells the kernel and keeps nothing; a kernel cancel or error aborts", async () => {
  const sent = [];
  const writer = new FakeWriter();
  const tr = new Transfer((m) => sent.push(m), "t", writer);
  tr.start(0);
  tr.receive({ kind: KINDS.BEGIN, id: "t", total: 10 });
  tr.cancel();
  assert.deepEqual(sent.at(-1), { kind: KINDS.CANCEL, id: "t" });
  assert.equal(tr.state, "cancelled");
  assert.ok(writer.aborted);
  assert.equal(tr.receive({ kind: KINDS.CHUNK, id: "t", seq: 0 }, [chunk(1)]), "over");

  for (const [kind, state] of [[KINDS.CANCEL, "cancelled"], [KINDS.ERROR, "error"]]) {
    const w = new FakeWriter();
    const messages = [];
    const t2 = new Transfer(() => {}, "u", w, { onEnd: (_, s, m) => messages.push([s, m]) });
    t2.start(0);
    t2.receive({ kind: KINDS.BEGIN, id: "u", total: 10 });
    t2.receive({ kind, id: "u", message: "/data/b.tif vanished while it was sent" });
    await until(() => t2.state === state);
    assert.equal(t2.state, state);
    assert.ok(w.aborted && !w.closed);
    if (state === "error") assert.deepEqual(messages, [["error", "/data/b.tif vanished while it was sent"]]);
  }
});

test("a chunk without bytes fails the transfer and tells the kernel", () => {
  const sent = [];
  const tr = new Transfer((m) => sent.push(m), "t", new FakeWriter());
  tr.start(0);
  tr.receive({ kind: KINDS.BEGIN, id: "t", total: 1 });
  assert.equal(tr.receive({ kind: KINDS.CHUNK, id: "t", seq: 0 }, []), "error");
  assert.equal(tr.state, "error");
  assert.deepEqual(sent.at(-1), { kind: KINDS.CANCEL, id: "t" });
});

test("the picker is used only when the browser has it and the user just clicked", async () => {
  const doc = { createElement: () => ({}), body: {} };
  const picked = [];
  const win = {
    document: doc,
    navigator: { userActivation: { isActive: true } },
    showSaveFilePicker: async (options) => {
      picked.push(options.suggestedName);
      return { createWritable: async () => ({ write: async () => {}, close: async () => {}, abort: async () => {} }) };
    },
  };
  assert.equal((await chooseWriter("a.zip", win)).method, "file-system-access");
  assert.deepEqual(picked, ["a.zip"]);
  win.navigator.userActivation.isActive = false;
  assert.equal((await chooseWriter("a.zip", win)).method, "download");
  win.navigator.userActivation.isActive = true;
  win.showSaveFilePicker = async () => { throw Object.assign(new Error("no"), { name: "AbortError" }); };
  assert.equal(await chooseWriter("a.zip", win), null);
  win.showSaveFilePicker = async () => { throw Object.assign(new Error("no"), { name: "SecurityError" }); };
  assert.equal((await chooseWriter("a.zip", win)).method, "download");
  delete win.showSaveFilePicker;
  assert.equal((await chooseWriter("a.zip", win)).method, "download");
});

test("sizes read as Python's size_text writes them", () => {
  assert.equal(sizeText(17), "17 B");
  assert.equal(sizeText(2 * 1048576 + 13), "2.0 MB");
  assert.equal(sizeText(3 * 1073741824), "3.0 GB");
});

test("chunks that arrive out of order are written in seq order; a repeated one fails", async () => {
  const sent = [];
  const writer = new FakeWriter();
  const tr = new Transfer((m) => sent.push(m), "t", writer);
  tr.start(0);
  tr.receive({ kind: KINDS.BEGIN, id: "t", total: 6 });
  const bytes = (n) => new DataView(new Uint8Array([n]).buffer);
  assert.equal(tr.receive({ kind: KINDS.CHUNK, id: "t", seq: 2 }, [bytes(2)]), "chunk");
  assert.equal(tr.receive({ kind: KINDS.END, id: "t", seq: 3, size: 3 }), "end");
  assert.equal(tr.receive({ kind: KINDS.CHUNK, id: "t", seq: 0 }, [bytes(0)]), "chunk");
  await settle();
  assert.equal(writer.chunks.length, 1); // 1 has not come: 2 waits
  assert.equal(tr.receive({ kind: KINDS.CHUNK, id: "t", seq: 1 }, [bytes(1)]), "chunk");
  await until(() => tr.state === "saved");
  assert.deepEqual(writer.chunks.map((c) => c.getUint8(0)), [0, 1, 2]);
  assert.equal(tr.state, "saved");

  const again = new Transfer(() => {}, "u", new FakeWriter());
  again.start(0);
  again.receive({ kind: KINDS.BEGIN, id: "u", total: 2 });
  again.receive({ kind: KINDS.CHUNK, id: "u", seq: 0 }, [bytes(0)]);
  assert.equal(again.receive({ kind: KINDS.CHUNK, id: "u", seq: 0 }, [bytes(0)]), "error");
  assert.equal(again.state, "error");
});
