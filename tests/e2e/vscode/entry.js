// The page's kernel client, bundled by esbuild (tests/e2e/vscodeharness.py): VS Code's webview
// builds its kernel connection with the same @jupyterlab/services classes.
export { KernelManager, KernelMessage, ServerConnection } from "@jupyterlab/services";
