// What the front-end tests share (not a test file itself): a widget model without a kernel.

/** A FakeModel class whose state starts from `defaults`: get/set/save_changes/send/on/off/emit. */
export function modelWith(defaults) {
  return class FakeModel {
    constructor(state) {
      this.state = { ...defaults, ...state };
      this.sent = [];
      this.handlers = new Map();
      this.saves = 0;
    }
    get(key) { return this.state[key]; }
    set(key, value) { this.state[key] = value; this.emit(`change:${key}`); }
    save_changes() { this.saves += 1; }
    send(msg) { this.sent.push(msg); }
    on(name, fn) { this.handlers.set(name, [...(this.handlers.get(name) || []), fn]); }
    off(name, fn) { this.handlers.set(name, (this.handlers.get(name) || []).filter((f) => f !== fn)); }
    emit(name, ...args) { for (const fn of this.handlers.get(name) || []) fn(...args); }
  };
}
