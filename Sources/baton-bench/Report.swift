import Foundation

extension Report {
    private struct Row {
        var metric: String
        var baton: String
        var reference: String
        var ratio: String
        var target: String
        var result: String
    }

    private static func f(_ value: Double, _ digits: Int = 2) -> String {
        value.isNaN ? "-" : String(format: "%.\(digits)f", value)
    }

    private static func check(_ value: Double, _ pass: Bool) -> String { value.isNaN ? "SKIP" : pass ? "PASS" : "MISS" }

    /// The hand-off rows of one pipeline run (none if it did not run).
    private func pipelineRows(_ result: HandoffResult?, _ setup: String, hopReference: Double, bareHandoff: Sample?,
                              bareWrites: JournalWriteSamples? = nil, config: BenchConfig) -> [Row] {
        guard let result else { return [] }
        func f(_ value: Double, _ digits: Int = 2) -> String { Self.f(value, digits) }
        let ratio = result.handoff.p50 / hopReference
        return [
            Row(metric: "Hand-off p50 (ms, 1 in flight; \(setup))", baton: f(result.handoff.p50), reference: f(hopReference) + " =1.5xRTT+fsync",
                ratio: f(ratio) + "x", target: "<= 1.5x bare RTT + 1 fsync", result: Self.check(ratio, ratio <= 1)),
            Row(metric: "  hand-off p99 (ms; \(result.timedSenders) sender\(result.timedSenders == 1 ? "" : "s") timed)", baton: f(result.handoff.p99),
                reference: "-", ratio: "-", target: "(info)", result: "-"),
        ] + (bareHandoff.map { bare in [
            Row(metric: "  bare hand-off p50 / p99 (ms; same IQ + journal)", baton: f(result.handoff.p50) + " / " + f(result.handoff.p99),
                reference: f(bare.p50) + " / " + f(bare.p99) + " bare", ratio: f(result.handoff.p50 / bare.p50) + "x",
                target: "(info: Baton's own cost)", result: "-"),
        ] } ?? []) + (bareWrites.map { writes in
            // The least any hand-off can take with this server, this disk and an SQLite
            // journal: the IQ at its size and the synced store, with no other write and no
            // code around them. Set beside the target, it says whether the target is reachable.
            let least = bareLargeRTT.p50 + writes.accept.p50
            return [
                Row(metric: "    its journal writes p50 (ms): handing / accept / handed", baton: "-",
                    reference: f(writes.handing.p50, 3) + " / " + f(writes.accept.p50, 3) + " / " + f(writes.handed.p50, 3),
                    ratio: "-", target: "(info: accept is synced)", result: "-"),
                Row(metric: "  least possible p50 (ms): RTT at its size + accept", baton: "-",
                    reference: f(least, 3) + " sum of p50s", ratio: f(least / hopReference) + "x",
                    target: "(info: vs the hand-off target)", result: "-"),
            ]
        } ?? []) + (result.custody.count == 0 ? [] : [
            Row(metric: "  custody moved p50 / p99 (ms; to receiver's sync)", baton: f(result.custody.p50) + " / " + f(result.custody.p99),
                reference: "-", ratio: f(result.custody.p50 / hopReference) + "x", target: "(info: no answer leg)", result: "-"),
        ]) + [
            Row(metric: "  step-to-step hop p50 / p99 (ms, e2e / 5)", baton: f(result.hop.p50) + " / " + f(result.hop.p99),
                reference: "-", ratio: f(result.hop.p50 / hopReference) + "x", target: "(info: + running the step)", result: "-"),
        ] + (result.usagePerHop.map { usage in [
            Row(metric: "  CPU per hop (ms; all agents, thread switches)", baton: f(usage.cpuMillis) + ", " + f(usage.switches, 0),
                reference: "-", ratio: "-", target: "(info: 2 cores share it)", result: "-"),
        ] } ?? []) + [
            Row(metric: "Hand-offs/s (\(result.workflows) in flight; \(setup))", baton: f(result.rate, 0),
                reference: f(result.seconds) + " s total", ratio: "-", target: ">= 500/s", result: Self.check(result.rate, result.rate >= 500)),
        ]
    }

    func print(config: BenchConfig) {
        func f(_ value: Double, _ digits: Int = 2) -> String { Self.f(value, digits) }
        func check(_ value: Double, _ pass: Bool) -> String { Self.check(value, pass) }
        
        let rttRatio = batonRTT.p50 / bareRTT.p50
        let throughputRatio = batonThroughput / bareThroughput
        let hopReference = 1.5 * bareRTT.p50 + fsync.p50
        let rows: [Row] = [
            Row(metric: "IQ round trip p50 (ms)", baton: f(batonRTT.p50, 3), reference: f(bareRTT.p50, 3) + " bare",
                ratio: f(rttRatio) + "x", target: "<= 1.2x bare", result: check(rttRatio, rttRatio <= 1.2)),
            Row(metric: "IQ round trip p99 (ms)", baton: f(batonRTT.p99, 3), reference: f(bareRTT.p99, 3) + " bare",
                ratio: f(batonRTT.p99 / bareRTT.p99) + "x", target: "(info)", result: "-"),
            Row(metric: "IQ throughput, \(config.window) in flight (IQ/s)", baton: f(batonThroughput, 0),
                reference: f(bareThroughput, 0) + " bare", ratio: f(throughputRatio * 100, 0) + "%",
                target: ">= 80% of bare", result: check(throughputRatio, throughputRatio >= 0.8)),
            Row(metric: "  RTT p50 under load (ms)", baton: f(batonThroughputRTT.p50, 2),
                reference: f(bareThroughputRTT.p50, 2) + " bare", ratio: f(batonThroughputRTT.p50 / bareThroughputRTT.p50) + "x",
                target: "(info)", result: "-"),
            Row(metric: "Discovery publish->peer p50 (ms)", baton: f(discovery.p50), reference: "-", ratio: "-",
                target: "< 100 ms", result: check(discovery.p50, discovery.p50 < 100 && discoveryMisses == 0)),
            Row(metric: "Discovery publish->peer p99 (ms)", baton: f(discovery.p99), reference: "-", ratio: "-",
                target: "< 100 ms", result: check(discovery.p99, discovery.p99 < 100 && discoveryMisses == 0)),
            Row(metric: "agentd start->online p50 (ms)", baton: f(startToOnline.p50, 1),
                reference: "max " + f(startToOnline.max, 1), ratio: "-", target: "< 300 ms", result: check(startToOnline.p50, startToOnline.p50 < 300)),
            Row(metric: "agentd idle RSS p50 (MB)", baton: f(rssMB.p50, 1), reference: "max " + f(rssMB.max, 1), ratio: "-",
                target: "< 20 MB", result: check(rssMB.p50, rssMB.p50 < 20)),
        ] + pipelineRows(inProcess, "agents in one process", hopReference: hopReference,
                         bareHandoff: bareHandoff.count > 0 ? bareHandoff : nil, bareWrites: bareHandoffWrites, config: config)
          + pipelineRows(acrossProcesses, "wf1-4 own processes", hopReference: hopReference, bareHandoff: nil, config: config) + [
            Row(metric: "Bare IQ round trip, \(largePayloadBytes)-byte ping p50 (ms)", baton: "-", reference: f(bareLargeRTT.p50, 3) + " bare",
                ratio: "-", target: "(reference: a hand-off's size)", result: "-"),
            Row(metric: "fsync of a small write p50 (ms)", baton: "-", reference: f(fsync.p50, 3), ratio: "-",
                target: "(reference)", result: "-"),
        ]
        let header = Row(metric: "Metric", baton: "Baton", reference: "Reference", ratio: "Ratio", target: "Target", result: "Result")
        let all = [header] + rows
        func width(_ key: KeyPath<Row, String>) -> Int { all.map { $0[keyPath: key].count }.max() ?? 0 }
        let widths = [width(\.metric), width(\.baton), width(\.reference), width(\.ratio), width(\.target), width(\.result)]
        func line(_ row: Row) -> String {
            let cells = [row.metric, row.baton, row.reference, row.ratio, row.target, row.result]
            return zip(cells, widths).enumerated().map { index, pair in
                index == 0 || index >= 4 ? pair.0.padding(toLength: pair.1, withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: pair.1 - pair.0.count) + pair.0
            }.joined(separator: "  ")
        }
        var out = "\nBaton benchmark (\(ProcessInfo.processInfo.activeProcessorCount) cores; pings \(config.pings), "
            + "throughput \(config.throughputPings) x \(config.window); rounds \(config.rounds); agentd runs \(config.agentdRuns); "
            + "step concurrency \(config.concurrency))\n"
        out += line(header) + "\n" + widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n"
        for row in rows { out += line(row) + "\n" }
        let misses = rows.filter { $0.result == "MISS" }.count
        out += "\n\(rows.filter { $0.result == "PASS" }.count) PASS, \(misses) MISS"
        if discoveryMisses > 0 { out += " (\(discoveryMisses) discovery rounds not seen within 5 s)" }
        for note in notes { out += "\n- " + note }
        Swift.print(out)
    }
}
