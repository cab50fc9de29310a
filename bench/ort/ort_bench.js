// ort_bench.js - ONNX Runtime (onnxruntime-node, CPU) on one model: the peer of bench/run.py.
// usage: node ort_bench.js MODEL.onnx BATCH THREADS SECONDS SIZE [OPT_LEVEL [SPINNING [SLICES]]]
//   OPT_LEVEL: graphOptimizationLevel, 'all' (default; on x86 it adds the NCHWc layout
//              transform) or 'extended' (or 'basic', 'disabled')
//   SPINNING:  session.intra_op.allow_spinning, '1' (ONNX Runtime's default: idle intra-op
//              threads spin before they sleep) or '0'
//   SLICES:    as `xbnserve bench --slices`: after the warm-up print {"ready":true}, then
//              measure SLICES slices of SECONDS/SLICES, each when a line arrives on stdin,
//              starting with one untimed run and answered with a {"slice":...} line
// Prints one JSON line like `xbnserve bench`: img_per_s, p50_ms, p99_ms, and the configuration.
'use strict';
const ort = require('onnxruntime-node');
const readline = require('readline');

const LEVELS = ['disabled', 'basic', 'extended', 'all'];

async function main() {
    const [file, batch, threads, seconds, size, level = 'all', spinning = '1', slices = '0'] =
        process.argv.slice(2);
    if (!LEVELS.includes(level) || !['0', '1'].includes(spinning)) {
        throw new Error(`OPT_LEVEL must be one of ${LEVELS.join(', ')} and SPINNING 0 or 1`);
    }
    const b = +batch, t = +threads, s = +size;
    const sess = await ort.InferenceSession.create(file, {
        intraOpNumThreads: t, interOpNumThreads: 1, executionMode: 'sequential',
        graphOptimizationLevel: level,
        extra: { session: { intra_op: { allow_spinning: spinning } } },
    });
    const data = new Float32Array(b * 3 * s * s);
    let r = 1;
    for (let i = 0; i < data.length; i++) { r = (r * 1103515245 + 12345) >>> 0; data[i] = (r >>> 16) / 32768 - 1; }
    const feeds = { [sess.inputNames[0]]: new ort.Tensor('float32', data, [b, 3, s, s]) };
    for (let i = 0; i < 2; i++) await sess.run(feeds);
    const lat = [];
    let total = 0, cpuUs = 0;
    // runs for `secs` (at least 3); each run's ms into lat; adds to total and cpuUs
    const measure = async (secs) => {
        const cpu0 = process.cpuUsage();
        const t0 = process.hrtime.bigint();
        let last = t0, n = 0;
        while (Number(last - t0) / 1e9 < secs || n < 3) {
            await sess.run(feeds);
            const now = process.hrtime.bigint();
            lat.push(Number(now - last) / 1e6);
            last = now, n++;
        }
        const cpu = process.cpuUsage(cpu0);
        total += Number(last - t0) / 1e9, cpuUs += cpu.user + cpu.system;
        return [n, Number(last - t0) / 1e9];
    };
    const n = +slices;
    if (n > 0) {
        console.log(JSON.stringify({ ready: true }));
        const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
        for (let k = 0; k < n; k++) {
            if ((await lines.next()).done) throw new Error(`stdin ended after ${k} of ${n} slices`);
            await sess.run(feeds);
            const [iterations, secs] = await measure(+seconds / n);
            console.log(JSON.stringify({ slice: k, iterations, seconds: secs }));
        }
    } else {
        await measure(+seconds);
    }
    lat.sort((x, y) => x - y);
    const out = JSON.stringify({
        peer: 'onnxruntime', version: ort.env.versions ? ort.env.versions.common : 'unknown',
        model: file, batch: b, threads: t, iterations: lat.length,
        graph_optimization_level: level, allow_spinning: spinning,
        img_per_s: +(b * lat.length / total).toFixed(2),
        p50_ms: +lat[Math.floor(lat.length / 2)].toFixed(3),
        p99_ms: +lat[Math.floor(lat.length * 0.99)].toFixed(3),
        // cores kept busy over the timed runs: with spinning on, idle threads count too
        cpu_cores: +(cpuUs / 1e6 / total).toFixed(2),
    });
    // exit once the line is out (a piped stdout is written asynchronously): the stdin reader
    // would keep the process alive
    process.stdout.write(out + '\n', () => process.exit(0));
}
main().catch((e) => { console.error(e); process.exit(1); });
