// The front end of jobtask_widgets.histogram.HistogramRange: a plain ES module, no bundler, no
// imports. It draws each shown band's histogram on one value axis as SVG, marks each band's
// stretch, and lets the user drag the range's two handles; only the end of a drag is sent.

// The message kinds of the histogram. Python names them in jobtask_widgets/histogram.py (KINDS);
// tests/unit/test_histogram.py checks that both sides agree.
export const KINDS = { RANGE: "range" };

const WIDTH = 230;
const HEIGHT = 70;
const PAD = 6; // room for the handles at both ends
const SVG_NS = "http://www.w3.org/2000/svg";

/** The x of a value, and the value of an x, on the drawing's axis. */
export function scale(axis, width = WIDTH, pad = PAD) {
  const [low, high] = axis;
  const span = high > low ? high - low : 1;
  const inner = width - 2 * pad;
  return {
    x: (value) => pad + ((value - low) / span) * inner,
    value: (x) => low + ((Math.min(Math.max(x, pad), width - pad) - pad) / inner) * span,
  };
}

/** The range the handles show: the lowest low and highest high of the bands' stretches. */
export function handleRange(ranges, axis) {
  if (!ranges || !ranges.length) return [axis[0], axis[1]];
  return [Math.min(...ranges.map((r) => r[0])), Math.max(...ranges.map((r) => r[1]))];
}

/** Each band's outline as SVG path data: counts scaled to the height (square root, so small bins show). */
export function outline(counts, width = WIDTH, height = HEIGHT, pad = PAD) {
  if (!counts || !counts.length) return "";
  const top = Math.max(...counts.map((c) => Math.sqrt(c)), 1);
  const step = (width - 2 * pad) / counts.length;
  let path = `M${pad},${height}`;
  counts.forEach((count, index) => {
    const y = height - (Math.sqrt(count) / top) * (height - 4);
    path += ` L${(pad + index * step).toFixed(2)},${y.toFixed(2)} L${(pad + (index + 1) * step).toFixed(2)},${y.toFixed(2)}`;
  });
  return `${path} L${width - pad},${height} Z`;
}

/** The range after dragging handle `which` ("low" or "high") to `x`: kept in order, snapped if integer. */
export function dragTo(range, which, x, axis, integer, width = WIDTH) {
  const { value } = scale(axis, width);
  let v = value(x);
  if (integer) v = Math.round(v);
  let [low, high] = range;
  const gap = integer ? 1 : (axis[1] - axis[0]) / 1000 || 1e-9;
  if (which === "low") low = Math.min(v, high - gap);
  else high = Math.max(v, low + gap);
  return [low, high];
}

function svgElement(tag, attributes) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

function formatValue(value, integer) {
  return integer ? String(Math.round(value)) : Number(value.toPrecision(4)).toString();
}

export default {
  render({ model, el }) {
    const box = document.createElement("div");
    box.className = "jobtask-histogram";
    const svg = svgElement("svg", { width: WIDTH, height: HEIGHT + 4, role: "img" });
    svg.style.display = "block";
    svg.style.touchAction = "none";
    const labels = document.createElement("div");
    labels.className = "jobtask-histogram-range";
    Object.assign(labels.style, { display: "flex", justifyContent: "space-between", width: `${WIDTH}px`, fontSize: "11px" });
    const lowLabel = document.createElement("span");
    const highLabel = document.createElement("span");
    labels.append(lowLabel, highLabel);
    box.append(svg, labels);
    el.appendChild(box);
    let range = null; // the handles' range while dragging
    let dragging = null;

    const draw = () => {
      const axis = model.get("axis");
      const integer = model.get("integer");
      const { x } = scale(axis);
      const shown = range || handleRange(model.get("ranges"), axis);
      svg.replaceChildren();
      svg.appendChild(svgElement("rect", { x: x(shown[0]), y: 0, width: Math.max(x(shown[1]) - x(shown[0]), 1), height: HEIGHT, fill: "#e8eef8" }));
      for (const band of model.get("bands")) {
        const path = svgElement("path", { d: outline(band.counts), fill: band.colour, "fill-opacity": 0.25, stroke: band.colour, "stroke-width": 1 });
        path.classList.add("jobtask-histogram-band");
        svg.appendChild(path);
      }
      for (const [index, [low, high]] of (model.get("ranges") || []).entries()) {
        const colour = (model.get("bands")[index] || {}).colour || "#555";
        for (const value of [low, high]) {
          svg.appendChild(svgElement("line", { x1: x(value), x2: x(value), y1: 0, y2: HEIGHT, stroke: colour, "stroke-dasharray": "2,2" }));
        }
      }
      for (const [which, value] of [["low", shown[0]], ["high", shown[1]]]) {
        const handle = svgElement("rect", { x: x(value) - 4, y: 0, width: 8, height: HEIGHT + 4, rx: 2, fill: "#1f6fd1", "fill-opacity": 0.85, cursor: "ew-resize" });
        handle.classList.add("jobtask-histogram-handle", `jobtask-histogram-${which}`);
        handle.dataset.which = which;
        svg.appendChild(handle);
      }
      lowLabel.textContent = formatValue(shown[0], integer);
      highLabel.textContent = formatValue(shown[1], integer);
    };

    // in the drawing's own units, whatever size the page draws it at (zoom, transforms)
    const localX = (event) => {
      const box = svg.getBoundingClientRect();
      return ((event.clientX - box.left) * WIDTH) / (box.width || WIDTH);
    };
    let before = null; // the range when the drag began
    const onDown = (event) => {
      const which = event.target && event.target.dataset && event.target.dataset.which;
      if (!which) return;
      dragging = which;
      range = handleRange(model.get("ranges"), model.get("axis"));
      before = range;
      svg.setPointerCapture(event.pointerId);
      event.preventDefault();
    };
    const onMove = (event) => {
      if (!dragging) return;
      range = dragTo(range, dragging, localX(event), model.get("axis"), model.get("integer"));
      draw();
    };
    const onUp = (event) => {
      if (!dragging) return;
      range = dragTo(range, dragging, localX(event), model.get("axis"), model.get("integer"));
      dragging = null;
      if (range[0] !== before[0] || range[1] !== before[1]) {
        model.send({ kind: KINDS.RANGE, low: range[0], high: range[1] }); // one restyle per drag
      } else {
        range = null; // a click without a move changes nothing
      }
      draw(); // the handles stay where they were let go until the kernel's new ranges arrive
    };
    const onCancel = () => {
      if (!dragging) return;
      dragging = null;
      range = null; // the drag never ended: the handles go back
      draw();
    };
    const onChange = () => {
      range = null;
      draw();
    };
    svg.addEventListener("pointerdown", onDown);
    svg.addEventListener("pointermove", onMove);
    svg.addEventListener("pointerup", onUp);
    svg.addEventListener("pointercancel", onCancel);
    for (const name of ["bands", "axis", "ranges", "integer"]) model.on(`change:${name}`, onChange);
    draw();
    return () => {
      for (const name of ["bands", "axis", "ranges", "integer"]) model.off(`change:${name}`, onChange);
    };
  },
};
