import QoSCore

/// Line charts as inline SVG: time (UTC) on x, the metric with its unit on
/// y from 0 to a round maximum, one polyline per series (a window without
/// a value — a rate of zero views — breaks the line).
enum ReportSVG {
    static let width = 640.0, height = 230.0
    static let left = 62.0, right = 12.0, top = 10.0, bottom = 40.0

    static func chart(_ c: ReportModel.Chart, _ points: [ReportModel.Point], stepMs: Int64) -> String {
        let values = c.series.map { s in points.map { $0.values[s.id] } }
        let defined = values.reduce(0) { $0 + $1.filter { $0 != nil }.count }
        var s = "<figure class=\"chart\" data-chart=\"\(c.id)\" data-points=\"\(defined)\"><figcaption>\(ReportHTML.esc(c.title))</figcaption>"
        s += "<svg viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(ReportHTML.esc(c.title)) over time\">"
        let plotW = width - left - right, plotH = height - top - bottom
        guard let t0 = points.first?.start, let t1 = points.last?.start else {
            return s + "<text x=\"\(width / 2)\" y=\"\(height / 2)\" text-anchor=\"middle\">no data</text></svg></figure>"
        }
        let span = max(Double(t1 - t0), 1)
        func x(_ t: Int64) -> Double { points.count == 1 ? left + plotW / 2 : left + Double(t - t0) / span * plotW }
        let maxV = values.flatMap { $0.compactMap { $0 } }.max() ?? 0
        let (yMax, yStep) = niceScale(maxV, c.format)
        func y(_ v: Double) -> Double { top + plotH - v / yMax * plotH }
        // Grid and y labels.
        var v = 0.0
        while v <= yMax * 1.000001 {
            let yv = y(v), yy = r(yv)
            s += "<line class=\"grid\" x1=\"\(left)\" x2=\"\(width - right)\" y1=\"\(yy)\" y2=\"\(yy)\"/>"
            s += "<text x=\"\(left - 6)\" y=\"\(r(yv + 4))\" text-anchor=\"end\">\(tick(v, c.format, step: yStep))</text>"
            v += yStep
        }
        s += "<text transform=\"translate(12 \(r(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">\(unit(c.format, stepMs: stepMs))</text>"
        // x ticks at round times.
        let tickMs = timeStep(Int64(span) , stepMs)
        var t = (t0 + tickMs - 1) / tickMs * tickMs
        let showDate = t1 - t0 >= 86_400_000 || CivilTime(epochMs: t0).date != CivilTime(epochMs: t1).date
        while t <= t1 {
            let xx = r(x(t))
            let ct = CivilTime(epochMs: t)
            let label = showDate && tickMs >= 86_400_000 ? String(ct.date.dropFirst(5))
                : (showDate && ct.hour == 0 && ct.minute == 0 ? String(ct.date.dropFirst(5)) + " " : "") + "\(ct.hour2):\(CivilTime.pad(ct.minute))"
            s += "<line class=\"axis\" x1=\"\(xx)\" x2=\"\(xx)\" y1=\"\(top + plotH)\" y2=\"\(top + plotH + 4)\"/>"
            s += "<text x=\"\(xx)\" y=\"\(r(top + plotH + 16))\" text-anchor=\"middle\">\(label)</text>"
            t += tickMs
        }
        s += "<line class=\"axis\" x1=\"\(left)\" x2=\"\(width - right)\" y1=\"\(top + plotH)\" y2=\"\(top + plotH)\"/>"
        s += "<text x=\"\(r(left + plotW / 2))\" y=\"\(height - 4)\" text-anchor=\"middle\">window start (UTC), one point per \(ReportHTML.duration(stepMs))</text>"
        // Lines: break where a value is undefined or a window is missing.
        for (i, series) in values.enumerated() {
            var run: [String] = []
            var prev: Int64?
            func flush() {
                if run.count == 1 {
                    let p = run[0].split(separator: ",")
                    s += "<circle class=\"s\(i)\" cx=\"\(p[0])\" cy=\"\(p[1])\" r=\"2\"/>"
                } else if run.count > 1 {
                    s += "<polyline class=\"s\(i)\" points=\"\(run.joined(separator: " "))\"/>"
                }
                run = []
            }
            for (p, value) in zip(points, series) {
                if let pv = prev, p.start - pv > stepMs { flush() }
                prev = p.start
                guard let value else { flush(); continue }
                run.append("\(r(x(p.start))),\(r(y(value)))")
            }
            flush()
        }
        s += "</svg><div class=\"legend\">"
        for (i, se) in c.series.enumerated() {
            let last = values[i].last { $0 != nil }.flatMap { $0 }
            s += "<span class=\"s\(i)\"></span>\(ReportHTML.esc(se.label)) (last \(ReportHTML.format(last, c.format)))"
        }
        return s + "</div></figure>\n"
    }

    /// One decimal place is plenty at 640 px.
    static func r(_ v: Double) -> String {
        let x = (v * 10).rounded() / 10
        return x == x.rounded() ? String(Int(x)) : String(x)
    }

    static func unit(_ f: ReportModel.Format, stepMs: Int64) -> String {
        switch f {
        case .ms: return "milliseconds"
        case .percent: return "percent"
        case .bytes: return "bytes"
        default: return "count per \(ReportHTML.duration(stepMs))"
        }
    }

    static func tick(_ v: Double, _ f: ReportModel.Format, step: Double) -> String {
        switch f {
        case .percent:
            let st = step * 100
            return "\(ReportHTML.fixed(v * 100, st >= 0.99 ? 0 : st >= 0.099 ? 1 : st >= 0.0099 ? 2 : 3)) %"
        case .ms: return v >= 1000 && v.truncatingRemainder(dividingBy: 1000) == 0 ? "\(Int(v / 1000)) s" : ReportHTML.count(v)
        default:
            if v >= 1e6 { return "\(ReportHTML.fixed(v / 1e6, v.truncatingRemainder(dividingBy: 1e6) == 0 ? 0 : 1)) M" }
            if v >= 1e4 { return "\(ReportHTML.fixed(v / 1e3, v.truncatingRemainder(dividingBy: 1e3) == 0 ? 0 : 1)) k" }
            return ReportHTML.count(v)
        }
    }

    /// A maximum ≥ `v` of 1, 2 or 5 × 10^n steps, about 4 of them.
    static func niceScale(_ v: Double, _ f: ReportModel.Format) -> (max: Double, step: Double) {
        let target = v > 0 ? v : (f == .percent ? 0.01 : 1)
        let raw = target / 4
        var mag = 1.0
        while mag * 10 <= raw { mag *= 10 }
        while mag > raw { mag /= 10 }
        var step = [1.0, 2, 2.5, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? mag * 10
        // Counts, milliseconds and bytes are whole: a step below 1 would label 0, 0, 1, 1.
        if f != .percent { step = max(step, 1) }
        let top = (target / step).rounded(.up) * step
        return (max(top, step), step)
    }

    /// A round tick interval giving at most 8 labels over `span`.
    static func timeStep(_ span: Int64, _ stepMs: Int64) -> Int64 {
        let steps: [Int64] = [60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000,
                              10_800_000, 21_600_000, 43_200_000, 86_400_000, 172_800_000, 604_800_000]
        return steps.first { $0 >= stepMs && span / $0 <= 7 } ?? 604_800_000
    }
}
