// Tests of the histogram's front-end maths (js/histogram.js): the axis scale, the handles' range,
// the bands' outlines and dragging a handle.
//   node --test js/tests/
import assert from "node:assert/strict";
import { test } from "node:test";

import { KINDS, dragTo, handleRange, outline, scale } from "../../jobtask_widgets/js/histogram.js";

const WIDTH = 230; // the module's drawing width and pad
const PAD = 6;

/** `actual` equals `expected`, number by number, to within 1e-9. */
function near(actual, expected) {
  assert.equal(actual.length, expected.length, `${actual} vs ${expected}`);
  actual.forEach((a, i) => assert.ok(Math.abs(a - expected[i]) < 1e-9, `${actual} vs ${expected}`));
}

/** The numbers of an SVG path: [[command, x, y], ...]. */
function points(path) {
  return [...path.matchAll(/([MLZ])(?:\s*(-?[\d.]+),(-?[\d.]+))?/g)].map(([, command, x, y]) =>
    command === "Z" ? ["Z"] : [command, Number(x), Number(y)],
  );
}

test("the message kind of a drag's end", () => {
  assert.deepEqual(KINDS, { RANGE: "range" });
});

test("scale: the axis ends sit at the pads, x and value are inverse, values clamp at the pads", () => {
  const { x, value } = scale([100, 300], WIDTH, PAD);
  assert.equal(x(100), PAD);
  assert.equal(x(300), WIDTH - PAD);
  assert.equal(x(200), WIDTH / 2);
  for (const v of [100, 123.5, 200, 299.9, 300]) assert.ok(Math.abs(value(x(v)) - v) < 1e-9, `${v}`);
  for (const px of [PAD, 50, 115, 200, WIDTH - PAD]) assert.ok(Math.abs(x(value(px)) - px) < 1e-9, `${px}`);
  assert.equal(value(0), 100); // left of the left pad
  assert.equal(value(-500), 100);
  assert.equal(value(WIDTH), 300); // right of the right pad
  assert.equal(value(10_000), 300);
});

test("scale: an empty axis still maps (a span of 1) and the defaults are the drawing's size", () => {
  const flat = scale([5, 5], WIDTH, PAD);
  assert.equal(flat.x(5), PAD);
  assert.equal(flat.value(WIDTH - PAD), 6);
  const defaults = scale([0, 1]);
  assert.equal(defaults.x(0), PAD);
  assert.equal(defaults.x(1), WIDTH - PAD);
});

test("handleRange: the lowest low and the highest high; the whole axis without ranges", () => {
  assert.deepEqual(handleRange([[10, 50], [5, 40], [20, 60]], [0, 100]), [5, 60]);
  assert.deepEqual(handleRange([[0, 255]], [-10, 300]), [0, 255]);
  assert.deepEqual(handleRange([], [3, 9]), [3, 9]);
  assert.deepEqual(handleRange(null, [3, 9]), [3, 9]);
  assert.deepEqual(handleRange(undefined, [-1.5, 2.5]), [-1.5, 2.5]);
  const axis = [0, 1];
  assert.notEqual(handleRange([], axis), axis); // a copy: dragging never changes the model's axis
});

test("outline: a closed path along the bins, the tallest bin reaching the top", () => {
  const height = 70;
  const path = outline([0, 4, 16, 1], WIDTH, height, PAD);
  assert.match(path, /^M/);
  assert.match(path, /Z$/);
  const pts = points(path);
  assert.deepEqual(pts[0], ["M", PAD, height]);
  assert.deepEqual(pts.at(-2), ["L", WIDTH - PAD, height]);
  assert.deepEqual(pts.at(-1), ["Z"]);
  const bins = pts.slice(1, -2);
  assert.equal(bins.length, 8); // two points per bin
  const ys = bins.map((p) => p[2]);
  assert.equal(Math.min(...ys), 4); // the tallest bin: 4 px below the top
  assert.deepEqual([ys[4], ys[5]], [4, 4]); // it is the third bin (16)
  assert.deepEqual([ys[0], ys[1]], [height, height]); // an empty bin stays on the base line
  assert.ok(ys[2] > ys[4] && ys[6] > ys[2]); // 4 is lower than 16, 1 lower than 4 (square roots)
  assert.equal(ys[2], 37); // sqrt(4) / sqrt(16) of the 66 px
  const xs = bins.map((p) => p[1]);
  assert.deepEqual(xs, [6, 60.5, 60.5, 115, 115, 169.5, 169.5, 224]); // the bins span the pads evenly
});

test("outline: nothing for no counts; a flat line for all-zero counts", () => {
  assert.equal(outline([]), "");
  assert.equal(outline(null), "");
  const ys = points(outline([0, 0, 0], WIDTH, 70, PAD)).filter((p) => p[0] === "L").map((p) => p[2]);
  assert.ok(ys.length > 0 && ys.every((y) => y === 70));
});

test("dragTo: a handle moves to the value under the pointer; the other stays", () => {
  const axis = [0, 100];
  const { x } = scale(axis, WIDTH);
  near(dragTo([20, 80], "low", x(35), axis, false), [35, 80]);
  near(dragTo([20, 80], "high", x(90), axis, false), [20, 90]);
  assert.deepEqual(dragTo([20, 80], "low", -100, axis, false), [0, 80]); // clamped at the left pad
  assert.deepEqual(dragTo([20, 80], "high", WIDTH + 100, axis, false), [20, 100]);
});

test("dragTo: low never passes high, keeping the gap of a thousandth of the axis", () => {
  const axis = [0, 100];
  const { x } = scale(axis, WIDTH);
  const [low, high] = dragTo([20, 80], "low", x(95), axis, false);
  assert.equal(high, 80);
  assert.ok(Math.abs(low - 79.9) < 1e-9, `${low}`);
  const [low2, high2] = dragTo([20, 80], "high", x(5), axis, false);
  assert.equal(low2, 20);
  assert.ok(Math.abs(high2 - 20.1) < 1e-9, `${high2}`);
  const flat = dragTo([5, 5.5], "low", WIDTH, [5, 5], false); // an empty axis: a tiny gap
  assert.ok(flat[0] < flat[1] && flat[1] - flat[0] < 1e-6, `${flat}`);
});

test("dragTo: integer data snaps to whole values and keeps a gap of one", () => {
  const axis = [0, 255];
  const { x } = scale(axis, WIDTH);
  assert.deepEqual(dragTo([0, 255], "low", x(37.4), axis, true), [37, 255]);
  assert.deepEqual(dragTo([0, 255], "high", x(200.6), axis, true), [0, 201]);
  assert.deepEqual(dragTo([10, 50], "low", x(120), axis, true), [49, 50]);
  assert.deepEqual(dragTo([10, 50], "high", x(3), axis, true), [10, 11]);
  for (let px = 0; px <= WIDTH; px += 7) {
    const [low, high] = dragTo([10, 50], "low", px, axis, true);
    assert.ok(Number.isInteger(low) && low < high && high === 50, `${px}: ${low}, ${high}`);
  }
});
