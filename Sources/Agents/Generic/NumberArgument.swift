import AgentKernel

/// Numbers arrive in workflow documents as doubles (JSON). Converting one that is infinite, NaN
/// or too large to an integer traps and kills the agent, so such conversions go through here:
/// a value outside the allowed range fails the step, naming the field and the range.
public enum NumberArgument {
    /// `value` if it is finite and inside `range`.
    public static func checked(_ value: Double, _ field: String, in range: ClosedRange<Double>, unit: String) throws -> Double {
        guard value.isFinite, range.contains(value) else {
            throw StepFailure("\(field) must be a number from \(text(range.lowerBound)) to \(text(range.upperBound)) \(unit), "
                              + "not \(text(value))")
        }
        return value
    }

    /// `value` as an integer (fraction dropped) if it is finite and inside `range`.
    public static func integer(_ value: Double, _ field: String, in range: ClosedRange<Int>, unit: String) throws -> Int {
        Int(try checked(value, field, in: Double(range.lowerBound)...Double(range.upperBound), unit: unit))
    }

    /// 300 rather than 300.0; anything else as Swift prints it (1e+16, inf, nan).
    static func text(_ x: Double) -> String {
        x.isFinite && x == x.rounded() && abs(x) < 1e18 ? String(Int(x)) : "\(x)"
    }
}
