// Tests of the pixel inspector's front-end logic (js/tilelayer.js) against a fake model, a fake
// document and a fake Leaflet:
//   node --test js/tests/
import assert from "node:assert/strict";
import { test } from "node:test";

import widget, {
  INSPECT_KINDS,
  KINDS,
  ValueQueries,
  attachInspector,
  popupContent,
  waitFor,
} from "../../jobtask_widgets/js/tilelayer.js";
import { modelWith } from "./fakes.mjs";

const FakeModel = modelWith({ active: false, attached: 0 });

// A document whose elements are plain objects; setting innerHTML on any of them is recorded.
class FakeDocument {
  constructor() {
    this.htmlWrites = [];
    this.created = [];
  }
  createElement(tag) {
    const doc = this;
    const element = {
      tag,
      className: "",
      textContent: "",
      children: [],
      appendChild(child) { this.children.push(child); return child; },
      set innerHTML(value) { doc.htmlWrites.push(value); },
      get innerHTML() { return undefined; },
    };
    this.created.push(element);
    return element;
  }
}

/** Every element under `element` (itself first). */
function walk(element) {
  return [element, ...element.children.flatMap(walk)];
}

const byClass = (root, className) => walk(root).filter((e) => e.className === className);
const texts = (root, className) => byClass(root, className).map((e) => e.textContent);

class FakeClassList {
  constructor() { this.names = new Set(); }
  toggle(name, on) { if (on) this.names.add(name); else this.names.delete(name); }
  remove(name) { this.names.delete(name); }
  contains(name) { return this.names.has(name); }
}

class FakeDomElement {
  constructor(tag, className) {
    this.tag = tag;
    this.className = className;
    this.children = [];
    this.attributes = {};
    this.style = {};
    this.classList = new FakeClassList();
  }
  setAttribute(name, value) { this.attributes[name] = value; }
  appendChild(child) { this.children.push(child); return child; }
}

class FakeLeafletMap {
  constructor() {
    this.handlers = new Map();
    this.container = { style: {}, classList: new FakeClassList() };
    this.controls = [];
    this.opened = [];
  }
  on(name, fn) { this.handlers.set(name, [...(this.handlers.get(name) || []), fn]); }
  off(name, fn) { this.handlers.set(name, (this.handlers.get(name) || []).filter((f) => f !== fn)); }
  fire(name, event) { for (const fn of this.handlers.get(name) || []) fn(event); }
  getContainer() { return this.container; }
}

function fakeLeaflet() {
  const L = {
    listeners: [], // [element, name, fn]
    prevented: [],
    unpropagated: [],
    popups: [],
    GridLayer: {}, // what initialize waits for
    control(options) {
      const control = {
        options,
        element: null,
        map: null,
        addTo(map) {
          this.map = map;
          this.element = this.onAdd(map);
          map.controls.push(this);
          return this;
        },
        remove() {
          if (this.map) this.map.controls = this.map.controls.filter((c) => c !== this);
          this.map = null;
        },
      };
      return control;
    },
    DomUtil: {
      create(tag, className, parent) {
        const element = new FakeDomElement(tag, className);
        if (parent) parent.appendChild(element);
        return element;
      },
    },
    DomEvent: {
      on(element, name, fn) { L.listeners.push([element, name, fn]); },
      preventDefault(event) { L.prevented.push(event); },
      disableClickPropagation(element) { L.unpropagated.push(element); },
    },
    popup(options) {
      const popup = {
        options,
        latlng: null,
        contents: [],
        openedOn: null,
        setLatLng(latlng) { this.latlng = latlng; return this; },
        setContent(content) { this.contents.push(content); return this; },
        openOn(map) { this.openedOn = map; map.opened.push(this); return this; },
      };
      L.popups.push(popup);
      return popup;
    },
  };
  return L;
}

/** Click the inspect button of the control on `map`. */
function pressButton(L, map) {
  const [control] = map.controls;
  const button = control.element.children[0];
  const listeners = L.listeners.filter(([element, name]) => element === button && name === "click");
  assert.equal(listeners.length, 1);
  const event = { type: "click" };
  listeners[0][2](event);
  return event;
}

// -- ValueQueries ------------------------------------------------------------------------------------

test("each query has its own id and asks for the values at the latlng's lat and lon", () => {
  const sent = [];
  const queries = new ValueQueries((m) => sent.push(m), "p");
  const first = queries.ask({ lat: 52.5, lng: 13.4 }, () => {});
  const second = queries.ask({ lat: -1.25, lng: 170 }, () => {});
  assert.notEqual(first, second);
  assert.deepEqual(sent, [
    { kind: INSPECT_KINDS.VALUES, id: first, lat: 52.5, lon: 13.4 },
    { kind: INSPECT_KINDS.VALUES, id: second, lat: -1.25, lon: 170 },
  ]);
  assert.equal(INSPECT_KINDS.VALUES, "values");
  const other = new ValueQueries(() => {}); // a second widget's prefix
  const ids = new Set([first, second, other.ask({ lat: 0, lng: 0 }, () => {}), other.ask({ lat: 0, lng: 0 }, () => {})]);
  assert.equal(ids.size, 4);
});

test("an answer reaches its query once; unknown ids and other kinds are ignored", () => {
  const queries = new ValueQueries(() => {}, "p");
  const answers = [];
  const id = queries.ask({ lat: 1, lng: 2 }, (a) => answers.push(a));
  const layers = [{ name: "a.tif", bands: [["red", "200"]], inside: true }];
  assert.equal(queries.receive({ kind: KINDS.TILE, id, revision: 0 }), "ignored"); // the tile protocol's
  assert.equal(queries.receive(null), "ignored");
  assert.equal(queries.receive({ kind: "values", id: "p-v99", lat: 1, lon: 2, layers }), "unknown");
  assert.equal(answers.length, 0);
  assert.equal(queries.receive({ kind: "values", id, lat: 1, lon: 2, layers }), "values");
  assert.deepEqual(answers, [{ status: "values", lat: 1, lon: 2, layers }]);
  assert.equal(queries.receive({ kind: "values", id, lat: 1, lon: 2, layers }), "unknown"); // once only
  assert.equal(answers.length, 1);
});

test("an error answer carries its message; an answer without layers lists none", () => {
  const queries = new ValueQueries(() => {}, "p");
  const answers = [];
  const a = queries.ask({ lat: 1, lng: 2 }, (r) => answers.push(r));
  const b = queries.ask({ lat: 3, lng: 4 }, (r) => answers.push(r));
  assert.equal(queries.receive({ kind: INSPECT_KINDS.ERROR, id: a, message: "x.tif: cannot be read" }), "error");
  assert.equal(queries.receive({ kind: INSPECT_KINDS.VALUES, id: b, lat: 3, lon: 4 }), "values");
  assert.deepEqual(answers, [
    { status: "error", message: "x.tif: cannot be read" },
    { status: "values", lat: 3, lon: 4, layers: [] },
  ]);
  assert.equal(queries.receive({ kind: INSPECT_KINDS.ERROR, id: a, message: "again" }), "unknown");
});

// -- popupContent ----------------------------------------------------------------------------------

const WHERE = { lat: 52.123456789, lng: 13.987654321 };

test("a pending popup says where and that the values are being read", () => {
  const doc = new FakeDocument();
  const box = popupContent(doc, { status: "pending" }, WHERE);
  assert.equal(box.className, "jobtask-values");
  assert.deepEqual(texts(box, "jobtask-values-where"), ["52.12346, 13.98765"]);
  assert.deepEqual(texts(box, "jobtask-values-note"), ["Reading the values..."]);
  assert.equal(box.children.length, 2);
});

test("an error popup shows the message; no layers says so", () => {
  const doc = new FakeDocument();
  const error = popupContent(doc, { status: "error", message: "g.tif: the pixel value cannot be read" }, WHERE);
  assert.deepEqual(texts(error, "jobtask-values-error"), ["g.tif: the pixel value cannot be read"]);
  assert.equal(byClass(error, "jobtask-values-table").length, 0);
  const none = popupContent(doc, { status: "values", lat: 1, lon: 2, layers: [] }, WHERE);
  assert.deepEqual(texts(none, "jobtask-values-note"), ["No raster is shown here."]);
  assert.equal(byClass(none, "jobtask-values-layer").length, 0);
});

test("each layer lists its bands; a layer outside the raster says so and lists none", () => {
  const doc = new FakeDocument();
  const layers = [
    { name: "a.tif", bands: [["red", "200"], ["green", "nodata"], ["blue", "1.5 (stored 15)"]], inside: true },
    { name: "b.tif", bands: [["band 1", "nodata"]], inside: false },
  ];
  const box = popupContent(doc, { status: "values", lat: 1, lon: 2, layers }, WHERE);
  assert.deepEqual(texts(box, "jobtask-values-layer"), ["a.tif", "b.tif: outside the raster"]);
  const tables = byClass(box, "jobtask-values-table");
  assert.equal(tables.length, 1);
  assert.deepEqual(
    tables[0].children.map((row) => [row.tag, ...row.children.map((cell) => [cell.tag, cell.textContent])]),
    [
      ["tr", ["th", "red"], ["td", "200"]],
      ["tr", ["th", "green"], ["td", "nodata"]],
      ["tr", ["th", "blue"], ["td", "1.5 (stored 15)"]],
    ],
  );
});

test("names, bands, values and messages reach the popup only as text, never as HTML", () => {
  const evil = "<img src=x onerror=alert(1)>";
  const doc = new FakeDocument();
  const answers = [
    { status: "values", lat: 1, lon: 2, layers: [{ name: evil, bands: [[evil, evil]], inside: true }] },
    { status: "values", lat: 1, lon: 2, layers: [{ name: evil, bands: [], inside: false }] },
    { status: "error", message: evil },
  ];
  const boxes = answers.map((answer) => popupContent(doc, answer, WHERE));
  assert.deepEqual(doc.htmlWrites, []); // nothing ever set innerHTML
  const carrying = boxes.flatMap(walk).filter((e) => e.textContent.includes(evil));
  assert.deepEqual(
    carrying.map((e) => [e.className, e.textContent]),
    [
      ["jobtask-values-layer", evil],
      ["jobtask-values-band", evil],
      ["jobtask-values-value", evil],
      ["jobtask-values-layer", `${evil}: outside the raster`],
      ["jobtask-values-error", evil],
    ],
  );
});

// -- attachInspector -------------------------------------------------------------------------------

test("a click while active asks once and the popup's content is replaced by the answer", () => {
  const L = fakeLeaflet();
  const map = new FakeLeafletMap();
  const model = new FakeModel({ active: true });
  const doc = new FakeDocument();
  const queries = new ValueQueries((m) => model.send(m), "p");
  const handle = attachInspector(L, map, model, queries, doc);
  assert.equal(map.controls.length, 1);
  assert.equal(map.controls[0].options.position, "topleft");
  assert.equal(map.container.style.cursor, "crosshair");
  assert.ok(map.container.classList.contains("jobtask-inspecting"));
  map.fire("click", { latlng: { lat: 52.5, lng: 13.4 } });
  assert.equal(model.sent.length, 1);
  const [query] = model.sent;
  assert.deepEqual(query, { kind: "values", id: query.id, lat: 52.5, lon: 13.4 });
  assert.equal(L.popups.length, 1);
  const [popup] = L.popups;
  assert.equal(popup.openedOn, map);
  assert.deepEqual(popup.latlng, { lat: 52.5, lng: 13.4 });
  assert.equal(popup.contents.length, 1);
  assert.equal(typeof popup.contents[0], "object"); // an element: Leaflet parses a string as HTML
  assert.deepEqual(texts(popup.contents[0], "jobtask-values-note"), ["Reading the values..."]);
  const layers = [{ name: "g.tif", bands: [["band 1", "7013"]], inside: true }];
  assert.equal(queries.receive({ kind: "values", id: query.id, lat: 52.5, lon: 13.4, layers }), "values");
  assert.equal(popup.contents.length, 2);
  assert.deepEqual(texts(popup.contents[1], "jobtask-values-layer"), ["g.tif"]);
  assert.deepEqual(texts(popup.contents[1], "jobtask-values-value"), ["7013"]);
  assert.deepEqual(texts(popup.contents[1], "jobtask-values-note"), []);
  assert.deepEqual(doc.htmlWrites, []);
  handle.detach();
});

test("a click while inactive asks nothing and opens no popup", () => {
  const L = fakeLeaflet();
  const map = new FakeLeafletMap();
  const model = new FakeModel({ active: false });
  const queries = new ValueQueries((m) => model.send(m), "p");
  attachInspector(L, map, model, queries, new FakeDocument());
  assert.equal(map.container.style.cursor, "");
  map.fire("click", { latlng: { lat: 1, lng: 2 } });
  assert.deepEqual(model.sent, []);
  assert.equal(L.popups.length, 0);
  assert.equal(map.opened.length, 0);
});

test("the button toggles active and saves; update shows the state on the button and the map", () => {
  const L = fakeLeaflet();
  const map = new FakeLeafletMap();
  const model = new FakeModel({ active: false });
  const handle = attachInspector(L, map, model, new ValueQueries(() => {}, "p"), new FakeDocument());
  const bar = map.controls[0].element;
  const button = bar.children[0];
  assert.ok(L.unpropagated.includes(bar)); // a press is not a click on the map
  assert.equal(button.attributes["aria-pressed"], "false");
  const event = pressButton(L, map);
  assert.deepEqual(L.prevented, [event]);
  assert.equal(model.get("active"), true);
  assert.equal(model.saves, 1);
  handle.update(); // initialize calls it on change:active
  assert.equal(button.attributes["aria-pressed"], "true");
  assert.ok(button.classList.contains("active"));
  assert.equal(map.container.style.cursor, "crosshair");
  pressButton(L, map);
  assert.equal(model.get("active"), false);
  assert.equal(model.saves, 2);
  handle.update();
  assert.equal(button.attributes["aria-pressed"], "false");
  assert.ok(!button.classList.contains("active"));
  assert.equal(map.container.style.cursor, "");
  assert.ok(!map.container.classList.contains("jobtask-inspecting"));
});

test("detach removes the click handler, the control and the crosshair", () => {
  const L = fakeLeaflet();
  const map = new FakeLeafletMap();
  const model = new FakeModel({ active: true });
  const handle = attachInspector(L, map, model, new ValueQueries((m) => model.send(m), "p"), new FakeDocument());
  assert.equal((map.handlers.get("click") || []).length, 1);
  handle.detach();
  assert.equal((map.handlers.get("click") || []).length, 0);
  assert.equal(map.controls.length, 0);
  assert.equal(map.container.style.cursor, "");
  assert.ok(!map.container.classList.contains("jobtask-inspecting"));
  map.fire("click", { latlng: { lat: 1, lng: 2 } });
  assert.deepEqual(model.sent, []);
  assert.equal(L.popups.length, 0);
});

test("the style that lets clicks pass through features is added to the page once", () => {
  const styles = [];
  const doc = new FakeDocument();
  doc.head = { appendChild: (element) => styles.push(element) };
  doc.getElementById = (id) => styles.find((s) => s.id === id) || null;
  const L = fakeLeaflet();
  const model = new FakeModel({});
  attachInspector(L, new FakeLeafletMap(), model, new ValueQueries(() => {}, "p"), doc);
  attachInspector(L, new FakeLeafletMap(), model, new ValueQueries(() => {}, "q"), doc); // a second view
  assert.equal(styles.length, 1);
  assert.equal(styles[0].id, "jobtask-inspect-style");
  assert.match(styles[0].textContent, /\.jobtask-inspecting .*pointer-events: none/);
});

// -- the module's default export ---------------------------------------------------------------------

test("initialize with role inspector attaches the control to every view and never asks for tiles", async () => {
  const map = new FakeLeafletMap();
  const mapModel = { views: { a: Promise.resolve({ obj: map }) } };
  const model = new FakeModel({ role: "inspector", map: "IPY_MODEL_m1", active: false });
  model.widget_manager = { get_model: async (id) => { assert.equal(id, "m1"); return mapModel; } };
  const L = fakeLeaflet();
  const doc = new FakeDocument();
  globalThis.L = L;
  globalThis.document = doc;
  let cleanup = null;
  try {
    cleanup = await widget.initialize({ model });
    await waitFor(() => model.get("attached") === 1, 10, 3000);
    assert.equal(map.controls.length, 1);
    assert.equal(map.controls[0].element.className, "leaflet-bar leaflet-control jobtask-inspect-control");
    model.set("active", true); // change:active updates every view
    assert.equal(map.container.style.cursor, "crosshair");
    map.fire("click", { latlng: { lat: 52.5, lng: 13.4 } });
    const values = model.sent.filter((m) => m.kind === INSPECT_KINDS.VALUES);
    assert.equal(values.length, 1);
    assert.ok(!model.sent.some((m) => m.kind === KINDS.TILE || m.kind === KINDS.CANCEL));
    const layers = [{ name: "g.tif", bands: [["band 1", "7"]], inside: true }];
    model.emit("msg:custom", { kind: "values", id: values[0].id, lat: 52.5, lon: 13.4, layers }, []);
    assert.deepEqual(texts(L.popups[0].contents.at(-1), "jobtask-values-value"), ["7"]);
  } finally {
    if (cleanup) cleanup();
    delete globalThis.L;
    delete globalThis.document;
  }
  assert.equal(model.get("attached"), 0);
  assert.equal((model.handlers.get("msg:custom") || []).length, 0);
  assert.equal((model.handlers.get("change:active") || []).length, 0);
  assert.equal((map.handlers.get("click") || []).length, 0);
  assert.equal(map.controls.length, 0);
});

test("a click on a copy of the world asks for the place on the world itself; the popup opens where clicked", () => {
  const L = fakeLeaflet();
  const map = new FakeLeafletMap();
  const model = new FakeModel({ active: true });
  const queries = new ValueQueries((m) => model.send(m), "w");
  const handle = attachInspector(L, map, model, queries, new FakeDocument());
  const clicked = { lat: 52.5, lng: 373.4, wrap: () => ({ lat: 52.5, lng: 13.4 }) };
  map.fire("click", { latlng: clicked });
  assert.equal(model.sent.length, 1);
  assert.equal(model.sent[0].lon, 13.4);
  assert.equal(L.popups[0].latlng, clicked);
  handle.detach();
});
