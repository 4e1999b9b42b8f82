// The front end of the map's parts drawn by the kernel: jobtask_widgets.tilelayer.RasterTileLayer
// and jobtask_widgets.inspector.PixelInspector (a widget whose model says role "inspector").
// A plain ES module, no bundler, no imports (anywidget loads it alone, so the two share it). The
// tile layer adds a Leaflet GridLayer to every view of an ipyleaflet map and asks the kernel for
// each tile; the inspector adds a button to every view and, while it is on, asks the kernel for
// the pixel values where the user clicks. Both speak over the widget's channel (see the Python
// modules for the protocols).

// The message kinds of the tile protocol. Python names them in jobtask_widgets/tilelayer.py
// (KINDS); tests/unit/test_tilelayer.py checks that both sides agree.
export const KINDS = { TILE: "tile", CANCEL: "cancel", ERROR: "error" };

// The message kinds of the inspect protocol. Python names them in jobtask_widgets/inspector.py
// (KINDS); tests/unit/test_inspector.py checks that both sides agree.
export const INSPECT_KINDS = { VALUES: "values", ERROR: "values-error" };

const POLL_MS = 250; // how often new map views are looked for
const LEAFLET_WAIT_MS = 120000; // in Voila, Leaflet may load after this module

/** Pending tile requests: ids, answers, revisions and cancels, without Leaflet. */
export class TileRequests {
  constructor(send, prefix = Math.random().toString(36).slice(2, 8)) {
    this.send = send;
    this.prefix = prefix;
    this.counter = 0;
    this.pending = new Map(); // id -> {revision, onAnswer}
  }

  /** Ask for tile (z, x, y) drawn at `revision`; `onAnswer(result)` gets its answer once. */
  request(coords, revision, onAnswer) {
    const id = `${this.prefix}-${++this.counter}`;
    this.pending.set(id, { revision, onAnswer });
    this.send({ kind: KINDS.TILE, id, z: coords.z, x: coords.x, y: coords.y, revision });
    return id;
  }

  /** A tile left the view: forget it and tell the kernel, which then sends no answer. */
  cancel(id) {
    if (this.pending.delete(id)) {
      this.send({ kind: KINDS.CANCEL, id });
    }
  }

  /** Route an answer; returns what became of it. Answers for an old revision are never drawn. */
  receive(msg, buffers, currentRevision) {
    if (!msg || (msg.kind !== KINDS.TILE && msg.kind !== KINDS.ERROR)) return "ignored";
    const entry = this.pending.get(msg.id);
    if (!entry) return "unknown";
    this.pending.delete(msg.id);
    if (msg.revision !== currentRevision || entry.revision !== currentRevision) {
      entry.onAnswer({ status: "stale" });
      return "stale";
    }
    if (msg.kind === KINDS.ERROR) {
      entry.onAnswer({ status: "error", message: String(msg.message) });
      return "error";
    }
    if (msg.empty) {
      entry.onAnswer({ status: "empty" });
      return "empty";
    }
    const buffer = buffers && buffers[0];
    if (!buffer) {
      entry.onAnswer({ status: "error", message: "a tile answer came without its image" });
      return "error";
    }
    entry.onAnswer({ status: "image", buffer, mediaType: msg.media_type || "image/png" });
    return "image";
  }
}

/** Poll `get` until it returns something truthy, or reject after `timeout` ms. */
export function waitFor(get, interval = 100, timeout = LEAFLET_WAIT_MS) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      let value;
      try {
        value = get();
      } catch (err) {
        value = undefined;
      }
      if (value) return resolve(value);
      if (Date.now() - started > timeout) return reject(new Error("timed out"));
      setTimeout(tick, interval);
    };
    tick();
  });
}

function toBounds(L, bounds) {
  if (!Array.isArray(bounds) || bounds.length !== 2) return undefined;
  return L.latLngBounds(bounds[0], bounds[1]);
}

/** Make the GridLayer class of this Leaflet, drawing tiles through `requests`. */
export function makeLayerClass(L, model, requests) {
  return L.GridLayer.extend({
    createTile(coords, done) {
      const tile = document.createElement("img");
      tile.alt = "";
      tile.setAttribute("role", "presentation");
      tile.className = "jobtask-raster-tile";
      const revision = model.get("revision");
      tile.dataset.revision = String(revision);
      Object.assign(tile.dataset, { z: String(coords.z), x: String(coords.x), y: String(coords.y) }); // where it is
      tile.dataset.tileId = requests.request(coords, revision, (result) => {
        if (result.status === "image") {
          const url = URL.createObjectURL(new Blob([result.buffer], { type: result.mediaType }));
          tile.onload = () => {
            URL.revokeObjectURL(url);
            done(null, tile);
          };
          tile.onerror = () => done(new Error("the tile image could not be decoded"), tile);
          tile.src = url;
        } else if (result.status === "empty") {
          tile.style.visibility = "hidden";
          done(null, tile);
        } else if (result.status === "error") {
          tile.style.visibility = "hidden";
          tile.title = result.message;
          done(new Error(result.message), tile);
        }
        // stale: the layer is being redrawn at the new revision; this tile is already gone
      });
      return tile;
    },
  });
}

/** Attach one grid layer to one Leaflet map; returns a handle with `update()` and `detach()`. */
export function attachLayer(L, LayerClass, map, model, requests) {
  const options = () => ({
    opacity: model.get("opacity"),
    minZoom: model.get("min_zoom"),
    maxZoom: model.get("max_zoom"),
    bounds: toBounds(L, model.get("bounds")),
    tileSize: 256,
    className: "jobtask-raster-layer",
  });
  let layer = new LayerClass(options());
  layer.on("tileunload", (event) => {
    const id = event.tile && event.tile.dataset && event.tile.dataset.tileId;
    if (id) requests.cancel(id);
  });
  const show = () => {
    if (model.get("visible")) {
      if (!map.hasLayer(layer)) layer.addTo(map);
    } else if (map.hasLayer(layer)) {
      map.removeLayer(layer);
    }
  };
  show();
  return {
    layer,
    map,
    redraw() {
      if (map.hasLayer(layer)) layer.redraw();
    },
    update() {
      layer.setOpacity(model.get("opacity"));
      show();
    },
    detach() {
      if (map.hasLayer(layer)) map.removeLayer(layer);
    },
  };
}

/** Follow the views of a map model: attach to each new Leaflet map, detach from removed ones. */
export function followViews(mapModel, attach, onCount) {
  const attached = new Map(); // Leaflet map -> handle
  let stopped = false;
  const poll = async () => {
    if (stopped) return;
    const views = await Promise.all(Object.values(mapModel.views || {}).map((p) => Promise.resolve(p).catch(() => null)));
    const live = new Set();
    for (const view of views) {
      const map = view && view.obj;
      if (!map || !map.getContainer) continue;
      live.add(map);
      if (!attached.has(map)) attached.set(map, attach(map));
    }
    for (const [map, handle] of attached) {
      if (!live.has(map)) {
        handle.detach();
        attached.delete(map);
      }
    }
    onCount(attached.size);
  };
  const timer = setInterval(poll, POLL_MS);
  poll();
  return {
    handles: () => [...attached.values()],
    stop() {
      stopped = true;
      clearInterval(timer);
      for (const handle of attached.values()) handle.detach();
      attached.clear();
      onCount(0);
    },
    poll,
  };
}

async function resolveMap(model) {
  const ref = model.get("map");
  if (!ref) return null;
  if (typeof ref !== "string") return ref;
  return model.widget_manager.get_model(ref.replace(/^IPY_MODEL_/, ""));
}

function setAttached(model, count) {
  if (model.get("attached") !== count) {
    model.set("attached", count);
    model.save_changes();
  }
}

/** Pending value queries of the inspector: ids and answers, without Leaflet. */
export class ValueQueries {
  constructor(send, prefix = Math.random().toString(36).slice(2, 8)) {
    this.send = send;
    this.prefix = prefix;
    this.counter = 0;
    this.pending = new Map(); // id -> onAnswer
  }

  /** Ask for the values at `latlng`; `onAnswer(answer)` gets its answer once. */
  ask(latlng, onAnswer) {
    const id = `${this.prefix}-v${++this.counter}`;
    this.pending.set(id, onAnswer);
    this.send({ kind: INSPECT_KINDS.VALUES, id, lat: latlng.lat, lon: latlng.lng });
    return id;
  }

  /** Route an answer; returns what became of it. */
  receive(msg) {
    if (!msg || (msg.kind !== INSPECT_KINDS.VALUES && msg.kind !== INSPECT_KINDS.ERROR)) return "ignored";
    const onAnswer = this.pending.get(msg.id);
    if (!onAnswer) return "unknown";
    this.pending.delete(msg.id);
    if (msg.kind === INSPECT_KINDS.ERROR) {
      onAnswer({ status: "error", message: String(msg.message) });
      return "error";
    }
    onAnswer({ status: "values", lat: msg.lat, lon: msg.lon, layers: Array.isArray(msg.layers) ? msg.layers : [] });
    return "values";
  }
}

function textElement(doc, tag, className, text) {
  const element = doc.createElement(tag);
  element.className = className;
  element.textContent = text;
  return element;
}

/** The popup's content for an answer, built from text nodes only (nothing is parsed as HTML). */
export function popupContent(doc, answer, latlng) {
  const box = textElement(doc, "div", "jobtask-values", "");
  box.appendChild(textElement(doc, "div", "jobtask-values-where", `${latlng.lat.toFixed(5)}, ${latlng.lng.toFixed(5)}`));
  if (answer.status === "pending") {
    box.appendChild(textElement(doc, "div", "jobtask-values-note", "Reading the values..."));
    return box;
  }
  if (answer.status === "error") {
    box.appendChild(textElement(doc, "div", "jobtask-values-error", answer.message));
    return box;
  }
  if (!answer.layers.length) {
    box.appendChild(textElement(doc, "div", "jobtask-values-note", "No raster is shown here."));
    return box;
  }
  for (const layer of answer.layers) {
    const title = layer.inside === false ? `${layer.name}: outside the raster` : String(layer.name);
    box.appendChild(textElement(doc, "div", "jobtask-values-layer", title));
    if (layer.inside === false) continue;
    const table = textElement(doc, "table", "jobtask-values-table", "");
    for (const [band, value] of layer.bands || []) {
      const row = doc.createElement("tr");
      row.appendChild(textElement(doc, "th", "jobtask-values-band", String(band)));
      row.appendChild(textElement(doc, "td", "jobtask-values-value", String(value)));
      table.appendChild(row);
    }
    box.appendChild(table);
  }
  return box;
}

const CROSSHAIR_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="18" height="18" viewBox="0 0 18 18" aria-hidden="true">' +
  '<circle cx="9" cy="9" r="5.5" fill="none" stroke="currentColor" stroke-width="1.6"/>' +
  '<path d="M9 1v5M9 12v5M1 9h5M12 9h5" stroke="currentColor" stroke-width="1.6"/></svg>';

// While the inspector is on, clicks go through the map's features to the map (no feature popup).
const INSPECT_CSS =
  ".jobtask-inspecting .leaflet-overlay-pane .leaflet-interactive," +
  " .jobtask-inspecting .leaflet-marker-pane .leaflet-interactive { pointer-events: none !important; }";

function ensureInspectStyle(doc) {
  if (!doc || typeof doc.getElementById !== "function" || !doc.head) return;
  if (doc.getElementById("jobtask-inspect-style")) return;
  const style = doc.createElement("style");
  style.id = "jobtask-inspect-style";
  style.textContent = INSPECT_CSS;
  doc.head.appendChild(style);
}

/** Attach the inspect control to one Leaflet map; returns a handle with `update()` and `detach()`. */
export function attachInspector(L, map, model, queries, doc = globalThis.document) {
  ensureInspectStyle(doc);
  let button = null;
  const control = L.control({ position: "topleft" });
  control.onAdd = () => {
    const bar = L.DomUtil.create("div", "leaflet-bar leaflet-control jobtask-inspect-control");
    button = L.DomUtil.create("a", "jobtask-inspect-button", bar);
    button.href = "#";
    button.title = "Inspect pixel values: click the map to read them";
    button.setAttribute("role", "button");
    button.innerHTML = CROSSHAIR_SVG; // a constant of this module, nothing from outside
    Object.assign(button.style, { display: "flex", alignItems: "center", justifyContent: "center" });
    L.DomEvent.disableClickPropagation(bar);
    L.DomEvent.on(button, "click", (event) => {
      L.DomEvent.preventDefault(event);
      model.set("active", !model.get("active"));
      model.save_changes();
    });
    update();
    return bar;
  };
  const onClick = (event) => {
    if (!model.get("active")) return;
    // a click on a copy of the world (the map repeats it east and west) asks for the same place
    const latlng = typeof event.latlng.wrap === "function" ? event.latlng.wrap() : event.latlng;
    const popup = L.popup({ maxWidth: 360, className: "jobtask-values-popup" })
      .setLatLng(event.latlng)
      .setContent(popupContent(doc, { status: "pending" }, latlng))
      .openOn(map);
    queries.ask(latlng, (answer) => popup.setContent(popupContent(doc, answer, latlng)));
  };
  function update() {
    const on = Boolean(model.get("active"));
    if (button) {
      button.classList.toggle("active", on);
      button.setAttribute("aria-pressed", String(on));
      button.style.background = on ? "#1f6fd1" : "";
      button.style.color = on ? "#fff" : "#333";
    }
    const container = map.getContainer();
    if (container && container.style) container.style.cursor = on ? "crosshair" : "";
    if (container && container.classList) container.classList.toggle("jobtask-inspecting", on);
  }
  control.addTo(map);
  map.on("click", onClick);
  return {
    update,
    detach() {
      map.off("click", onClick);
      control.remove();
      const container = map.getContainer();
      if (container && container.style) container.style.cursor = "";
      if (container && container.classList) container.classList.remove("jobtask-inspecting");
    },
  };
}

/** Follow the map of `model`: `makeAttach(L)` gives the function that attaches to one Leaflet map. */
function mapFollower(model, makeAttach) {
  let follower = null;
  let stopped = false;
  return {
    async start() {
      if (follower) follower.stop();
      follower = null;
      const mapModel = await resolveMap(model);
      if (!mapModel || stopped) return;
      const L = await waitFor(() => globalThis.L && globalThis.L.GridLayer && globalThis.L);
      if (stopped) return;
      follower = followViews(mapModel, makeAttach(L), (count) => setAttached(model, count));
    },
    handles: () => (follower ? follower.handles() : []),
    stop() {
      stopped = true;
      if (follower) follower.stop();
    },
  };
}

function initializeTiles(model) {
  const requests = new TileRequests((msg) => model.send(msg));
  const onMessage = (msg, buffers) => requests.receive(msg, buffers, model.get("revision"));
  model.on("msg:custom", onMessage);
  const follower = mapFollower(model, (L) => {
    const LayerClass = makeLayerClass(L, model, requests);
    return (map) => attachLayer(L, LayerClass, map, model, requests);
  });
  const start = () => follower.start().catch((err) => console.warn("jobtask-widgets: the raster layer could not attach:", err));
  const redraw = () => follower.handles().forEach((h) => h.redraw());
  const update = () => follower.handles().forEach((h) => h.update());
  model.on("change:revision", redraw);
  model.on("change:opacity", update);
  model.on("change:visible", update);
  model.on("change:map", start);
  start();
  return () => {
    follower.stop();
    model.off("msg:custom", onMessage);
    model.off("change:revision", redraw);
    model.off("change:opacity", update);
    model.off("change:visible", update);
    model.off("change:map", start);
  };
}

function initializeInspector(model) {
  const queries = new ValueQueries((msg) => model.send(msg));
  const onMessage = (msg) => queries.receive(msg);
  model.on("msg:custom", onMessage);
  const follower = mapFollower(model, (L) => (map) => attachInspector(L, map, model, queries));
  const start = () => follower.start().catch((err) => console.warn("jobtask-widgets: the inspector could not attach:", err));
  const update = () => follower.handles().forEach((h) => h.update());
  model.on("change:active", update);
  model.on("change:map", start);
  start();
  return () => {
    follower.stop();
    model.off("msg:custom", onMessage);
    model.off("change:active", update);
    model.off("change:map", start);
  };
}

export default {
  async initialize({ model }) {
    return model.get("role") === "inspector" ? initializeInspector(model) : initializeTiles(model);
  },

  render({ model, el }) {
    const label = document.createElement("span");
    label.className = "jobtask-raster-layer-label";
    const inspector = model.get("role") === "inspector";
    const update = () => {
      const what = inspector ? `pixel inspector (${model.get("active") ? "on" : "off"})` : model.get("name");
      label.textContent = `${what}: on ${model.get("attached")} map view(s)`;
    };
    update();
    model.on("change:attached", update);
    model.on("change:active", update);
    el.appendChild(label);
    return () => {
      model.off("change:attached", update);
      model.off("change:active", update);
    };
  },
};
