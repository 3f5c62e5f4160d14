// Drives kernelgate's Jupyter API with @jupyterlab/services, the library
// JupyterLab itself uses. Run by jsclient_test.go:
//
//   node run.js <base-url> <token> <legacy|v1>
//
// It prints one JSON report on stdout; the Go test asserts on it. Every
// step has a deadline so a hang is reported, not waited out.
const { ServerConnection, KernelManager, KernelSpecAPI, KernelAPI } = require('@jupyterlab/services');
const WS = require('ws');

const [baseUrl, token, framing] = process.argv.slice(2);

// Offering no subprotocol forces the legacy JSON framing, as Jupyter
// Server's own gateway client does.
class LegacyWS extends WS {
  constructor(url) { super(url); }
}

const settings = ServerConnection.makeSettings({
  baseUrl, wsUrl: baseUrl.replace(/^http/, 'ws'), token, appendToken: true,
  WebSocket: framing === 'legacy' ? LegacyWS : WS,
});

function deadline(p, ms, what) {
  let t;
  return Promise.race([p, new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: no answer in ${ms} ms`)), ms); })])
    .finally(() => clearTimeout(t));
}

async function execute(kernel, code, opts = {}) {
  const out = { stdout: '', stderr: '', reply: null };
  const future = kernel.requestExecute({ code, allow_stdin: true });
  future.onIOPub = (msg) => {
    if (msg.header.msg_type === 'stream') out[msg.content.name] += msg.content.text;
    if (opts.onStream && msg.header.msg_type === 'stream') opts.onStream(msg);
  };
  if (opts.onStdin) future.onStdin = (msg) => opts.onStdin(msg, kernel);
  const reply = await deadline(future.done, 60000, `execute ${JSON.stringify(code)}`);
  out.reply = { status: reply.content.status, ename: reply.content.ename || '' };
  return out;
}

async function main() {
  const report = { framing };
  const specs = await deadline(KernelSpecAPI.getSpecs(settings), 10000, 'getSpecs');
  report.default_spec = specs.default;
  report.spec_names = Object.keys(specs.kernelspecs);

  const manager = new KernelManager({ serverSettings: settings });
  await deadline(manager.ready, 10000, 'manager ready');
  const kernel = await deadline(manager.startNew({ name: 'python3' }), 60000, 'startNew');
  report.kernel_id = kernel.id;
  const info = await deadline(kernel.info, 30000, 'kernel info');
  report.protocol_version = info.protocol_version;
  report.selected_protocol = kernel._selectedProtocol || '';

  const first = await execute(kernel, "import time\nfor i in range(3):\n    print('tick', i)\n    time.sleep(0.05)\nx = 41");
  report.stream = first.stdout;
  report.stream_status = first.reply.status;

  const asked = await execute(kernel, "name = input('who? ')\nprint('hello', name)", {
    onStdin: (msg, k) => { report.input_prompt = msg.content.prompt; k.sendInputReply({ status: 'ok', value: 'lab' }, msg.header); },
  });
  report.input_stdout = asked.stdout;

  let interrupted;
  const sleeping = execute(kernel, "import time\nprint('sleeping', flush=True)\ntime.sleep(100)", {
    onStream: () => { if (!interrupted) interrupted = kernel.interrupt(); },
  });
  const slept = await sleeping;
  await interrupted;
  report.interrupt_status = slept.reply.status;
  report.interrupt_ename = slept.reply.ename;

  await deadline(kernel.restart(), 60000, 'restart');
  await deadline(kernel.info, 30000, 'kernel info after restart');
  const after = await execute(kernel, 'x');
  report.after_restart_ename = after.reply.ename;
  const again = await execute(kernel, "print('alive')");
  report.after_restart_stdout = again.stdout;

  const running = await KernelAPI.listRunning(settings);
  report.listed = running.some((m) => m.id === kernel.id);
  await deadline(kernel.shutdown(), 30000, 'shutdown');
  const left = await KernelAPI.listRunning(settings);
  report.listed_after_shutdown = left.some((m) => m.id === kernel.id);
  manager.dispose();
  return report;
}

main().then(
  (r) => { process.stdout.write(JSON.stringify(r) + '\n'); process.exit(0); },
  (e) => { process.stdout.write(JSON.stringify({ error: String(e && e.stack || e) }) + '\n'); process.exit(1); },
);
