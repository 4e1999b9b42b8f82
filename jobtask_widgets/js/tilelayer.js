// The front end of jobtask_widgets.tilelayer.RasterTileLayer: a plain ES module, no bundler,
// no imports. It adds a Leaflet GridLayer to every view of an ipyleaflet map and asks the
// kernel for each tile over the widget's channel (see the Python module for the protocol).

// The message kinds of the tile protocol. Python names them in jobtask_widgets/tilelayer.py
// (KINDS); tests/unit/test_tilelayer.py checks that both sides agree.
export const KINDS = { TILE: "tile", CANCEL: "cancel", ERROR: "error" };

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

export default {
  async initialize({ model }) {
    const requests = new TileRequests((msg) => model.send(msg));
    const onMessage = (msg, buffers) => requests.receive(msg, buffers, model.get("revision"));
    model.on("msg:custom", onMessage);
    let follower = null;
    let stopped = false;
    const start = async () => {
      if (follower) follower.stop();
      follower = null;
      const mapModel = await resolveMap(model);
      if (!mapModel || stopped) return;
      const L = await waitFor(() => globalThis.L && globalThis.L.GridLayer && globalThis.L);
      if (stopped) return;
      const LayerClass = makeLayerClass(L, model, requests);
      follower = followViews(
        mapModel,
        (map) => attachLayer(L, LayerClass, map, model, requests),
        (count) => setAttached(model, count),
      );
    };
    const each = (fn) => () => follower && follower.handles().forEach(fn);
    const redraw = each((h) => h.redraw());
    const update = each((h) => h.update());
    model.on("change:revision", redraw);
    model.on("change:opacity", update);
    model.on("change:visible", update);
    model.on("change:map", start);
    start().catch((err) => console.warn("jobtask-widgets: the raster layer could not attach:", err));
    return () => {
      stopped = true;
      if (follower) follower.stop();
      model.off("msg:custom", onMessage);
      model.off("change:revision", redraw);
      model.off("change:opacity", update);
      model.off("change:visible", update);
      model.off("change:map", start);
    };
  },

  render({ model, el }) {
    const label = document.createElement("span");
    label.className = "jobtask-raster-layer-label";
    const update = () => {
      label.textContent = `${model.get("name")}: on ${model.get("attached")} map view(s)`;
    };
    update();
    model.on("change:attached", update);
    el.appendChild(label);
    return () => model.off("change:attached", update);
  },
};
