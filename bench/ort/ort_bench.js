// ort_bench.js - ONNX Runtime (onnxruntime-node, CPU) on one model: the peer of bench/run.py.
// usage: node ort_bench.js MODEL.onnx BATCH THREADS SECONDS SIZE [OPT_LEVEL [SPINNING]]
//   OPT_LEVEL: graphOptimizationLevel, 'all' (default; on x86 it adds the NCHWc layout
//              transform) or 'extended' (or 'basic', 'disabled')
//   SPINNING:  session.intra_op.allow_spinning, '1' (ONNX Runtime's default: idle intra-op
//              threads spin before they sleep) or '0'
// Prints one JSON line like `xbnserve bench`: img_per_s, p50_ms, p99_ms, and the configuration.
'use strict';
const ort = require('onnxruntime-node');

const LEVELS = ['disabled', 'basic', 'extended', 'all'];

async function main() {
    const [file, batch, threads, seconds, size, level = 'all', spinning = '1'] = process.argv.slice(2);
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
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    let last = t0;
    while (Number(last - t0) / 1e9 < +seconds || lat.length < 3) {
        await sess.run(feeds);
        const now = process.hrtime.bigint();
        lat.push(Number(now - last) / 1e6);
        last = now;
    }
    const total = Number(last - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    lat.sort((x, y) => x - y);
    console.log(JSON.stringify({
        peer: 'onnxruntime', version: ort.env.versions ? ort.env.versions.common : 'unknown',
        model: file, batch: b, threads: t, iterations: lat.length,
        graph_optimization_level: level, allow_spinning: spinning,
        img_per_s: +(b * lat.length / total).toFixed(2),
        p50_ms: +lat[Math.floor(lat.length / 2)].toFixed(3),
        p99_ms: +lat[Math.floor(lat.length * 0.99)].toFixed(3),
        // cores kept busy over the timed runs: with spinning on, idle threads count too
        cpu_cores: +((cpu.user + cpu.system) / 1e6 / total).toFixed(2),
    }));
}
main().catch((e) => { console.error(e); process.exit(1); });
