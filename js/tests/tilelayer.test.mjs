// Tests of the tile layer's front-end logic against a fake model and a fake Leaflet:
//   node --test js/tests/
import assert from "node:assert/strict";
import { test } from "node:test";

import widget, { KINDS, TileRequests, attachLayer, followViews, waitFor } from "../../jobtask_widgets/js/tilelayer.js";
import { modelWith } from "./fakes.mjs";

const FakeModel = modelWith({ revision: 0, opacity: 1, visible: true, min_zoom: 0, max_zoom: 24, bounds: [], attached: 0 });

class FakeMap {
  constructor() { this.layers = new Set(); }
  hasLayer(layer) { return this.layers.has(layer); }
  removeLayer(layer) { this.layers.delete(layer); }
  getContainer() { return {}; }
}

const FakeL = {
  latLngBounds: (a, b) => ({ a, b }),
  GridLayer: {
    extend(proto) {
      return class {
        constructor(options) { this.options = options; this.events = {}; this.redraws = 0; Object.assign(this, proto); }
        on(name, fn) { this.events[name] = fn; }
        addTo(map) { map.layers.add(this); return this; }
        setOpacity(value) { this.options.opacity = value; }
        redraw() { this.redraws += 1; }
      };
    },
  },
};

test("requests carry id, coordinates and revision; answers reach their tile once", () => {
  const sent = [];
  const requests = new TileRequests((m) => sent.push(m), "t");
  const answers = [];
  const id = requests.request({ z: 3, x: 4, y: 5 }, 2, (a) => answers.push(a));
  assert.deepEqual(sent, [{ kind: "tile", id: "t-1", z: 3, x: 4, y: 5, revision: 2 }]);
  const buffer = new DataView(new ArrayBuffer(4));
  assert.equal(requests.receive({ kind: "tile", id, media_type: "image/png", revision: 2 }, [buffer], 2), "image");
  assert.equal(answers.length, 1);
  assert.equal(answers[0].status, "image");
  assert.equal(answers[0].buffer, buffer);
  assert.equal(requests.receive({ kind: "tile", id, revision: 2 }, [buffer], 2), "unknown"); // once only
});

test("answers for an old revision are never drawn", () => {
  const requests = new TileRequests(() => {}, "t");
  const answers = [];
  const id = requests.request({ z: 1, x: 0, y: 0 }, 1, (a) => answers.push(a));
  assert.equal(requests.receive({ kind: "tile", id, media_type: "image/png", revision: 1 }, [new ArrayBuffer(1)], 2), "stale");
  assert.deepEqual(answers, [{ status: "stale" }]);
});

test("empty tiles, errors and a missing buffer", () => {
  const requests = new TileRequests(() => {}, "t");
  const answers = [];
  const a = requests.request({ z: 1, x: 0, y: 0 }, 0, (r) => answers.push(r));
  const b = requests.request({ z: 1, x: 1, y: 0 }, 0, (r) => answers.push(r));
  const c = requests.request({ z: 1, x: 1, y: 1 }, 0, (r) => answers.push(r));
  assert.equal(requests.receive({ kind: "tile", id: a, empty: true, revision: 0 }, [], 0), "empty");
  assert.equal(requests.receive({ kind: "error", id: b, message: "boom", revision: 0 }, [], 0), "error");
  assert.equal(requests.receive({ kind: "tile", id: c, media_type: "image/png", revision: 0 }, [], 0), "error");
  assert.deepEqual(answers.map((r) => r.status), ["empty", "error", "error"]);
  assert.equal(answers[1].message, "boom");
  assert.equal(requests.receive({ kind: "other" }, [], 0), "ignored");
});

test("a cancelled tile tells the kernel once and ignores a late answer", () => {
  const sent = [];
  const requests = new TileRequests((m) => sent.push(m), "t");
  const answers = [];
  const id = requests.request({ z: 2, x: 1, y: 1 }, 0, (a) => answers.push(a));
  requests.cancel(id);
  requests.cancel(id);
  assert.deepEqual(sent.slice(1), [{ kind: KINDS.CANCEL, id }]);
  assert.equal(requests.receive({ kind: "tile", id, media_type: "image/png", revision: 0 }, [new ArrayBuffer(1)], 0), "unknown");
  assert.equal(answers.length, 0);
});

test("the layer follows visible and opacity, and tile unloads cancel their request", () => {
  const model = new FakeModel({ bounds: [[1, 2], [3, 4]], opacity: 0.5 });
  const requests = new TileRequests((m) => model.send(m), "t");
  const LayerClass = FakeL.GridLayer.extend({});
  const map = new FakeMap();
  const handle = attachLayer(FakeL, LayerClass, map, model, requests);
  assert.ok(map.hasLayer(handle.layer));
  assert.equal(handle.layer.options.opacity, 0.5);
  assert.deepEqual(handle.layer.options.bounds, { a: [1, 2], b: [3, 4] });
  model.state.visible = false;
  handle.update();
  assert.ok(!map.hasLayer(handle.layer));
  model.state.visible = true;
  model.state.opacity = 0.2;
  handle.update();
  assert.ok(map.hasLayer(handle.layer));
  assert.equal(handle.layer.options.opacity, 0.2);
  const id = requests.request({ z: 1, x: 0, y: 0 }, 0, () => {});
  handle.layer.events.tileunload({ tile: { dataset: { tileId: id } } });
  assert.deepEqual(model.sent.at(-1), { kind: "cancel", id });
  handle.redraw();
  assert.equal(handle.layer.redraws, 1);
  handle.detach();
  assert.ok(!map.hasLayer(handle.layer));
});

test("every view of the map gets the layer; removed views lose it; the count is reported", async () => {
  const first = { obj: new FakeMap() };
  const second = { obj: new FakeMap() };
  const mapModel = { views: { a: Promise.resolve(first) } };
  const counts = [];
  const detached = [];
  const follower = followViews(mapModel, (map) => ({ detach: () => detached.push(map) }), (n) => counts.push(n));
  await follower.poll();
  assert.equal(counts.at(-1), 1);
  mapModel.views.b = Promise.resolve(second); // the map shown a second time
  await follower.poll();
  assert.equal(counts.at(-1), 2);
  delete mapModel.views.a; // that view was closed
  await follower.poll();
  assert.equal(counts.at(-1), 1);
  assert.deepEqual(detached, [first.obj]);
  mapModel.views.c = Promise.resolve({}); // a view whose Leaflet map is not made yet
  await follower.poll();
  assert.equal(counts.at(-1), 1);
  follower.stop();
  assert.equal(counts.at(-1), 0);
  assert.deepEqual(detached, [first.obj, second.obj]);
});

test("waitFor waits for Leaflet to appear, and gives up", async () => {
  let value = null;
  setTimeout(() => { value = "L"; }, 30);
  assert.equal(await waitFor(() => value, 5, 1000), "L");
  await assert.rejects(waitFor(() => null, 5, 30), /timed out/);
});

test("initialize attaches to the map's views once Leaflet loads, and cleans up", async () => {
  const view = { obj: new FakeMap() };
  const mapModel = { views: { a: Promise.resolve(view) } };
  const model = new FakeModel({ map: "IPY_MODEL_abc" });
  model.widget_manager = { get_model: async (id) => { assert.equal(id, "abc"); return mapModel; } };
  const cleanup = await widget.initialize({ model });
  setTimeout(() => { globalThis.L = FakeL; }, 20); // Leaflet arrives after the widget, as in Voila
  await waitFor(() => model.get("attached") === 1, 10, 3000);
  assert.equal(view.obj.layers.size, 1);
  const [layer] = view.obj.layers;
  model.set("revision", 1);
  assert.equal(layer.redraws, 1);
  model.set("visible", false);
  assert.equal(view.obj.layers.size, 0);
  cleanup();
  assert.equal(model.get("attached"), 0);
  assert.equal((model.handlers.get("msg:custom") || []).length, 0);
  delete globalThis.L;
});
