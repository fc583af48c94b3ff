import Foundation
import Testing
@testable import ApplianceEngine

/// The guest's console as it arrives: when its TAP plan appears (the boot time).
@Suite struct ConsoleCaptureTests {
    @Test func thePlanIsSeenWhereverTheChunksSplitIt() {
        let text = "[    0.1] booting\nbaton-init: ready\n1..3\nok 1 - a\n"
        let plan = text.range(of: "\n1..")!.lowerBound.utf16Offset(in: text)
        for split in 0...text.utf8.count {
            let console = ConsoleCapture(watchPlan: true)
            let bytes = Data(text.utf8)
            console.append(bytes.prefix(split))
            #expect((console.planSeen != nil) == (split >= plan + 4), "split at \(split)")
            console.append(bytes.dropFirst(split))
            #expect(console.planSeen != nil, "split at \(split)")
            #expect(console.text == text)
        }
        // Byte by byte, as a slow serial line gives it.
        let slow = ConsoleCapture(watchPlan: true)
        for byte in Data(text.utf8) { slow.append(Data([byte])) }
        #expect(slow.planSeen != nil)
        let none = ConsoleCapture(watchPlan: true)
        none.append(Data("1..3 is not at a line start\nok\n".utf8))
        #expect(none.planSeen == nil)
    }
}
