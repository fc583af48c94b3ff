import Testing
@testable import ApplianceEngine

@Suite struct TAPTests {
    /// A guest that found no contextualisation disk plans nothing; with two checks asked for,
    /// that fails, naming the guest's reason. It used to pass with no check run.
    @Test func anEmptyPlanFailsWhenChecksWereAskedFor() {
        let tap = TAPResult.parse("[    1.2] virtio_blk virtio1: [vda]\n1..0 # SKIP no contextualisation disk\n")
        #expect(tap.plan == 0)
        #expect(tap.failure(expecting: 2) == "the guest planned 0 of the recipe's 2 checks (SKIP no contextualisation disk)")
        let report = VMTestReport(outcome: .poweredOff, accelerator: .tcg, acceleratorNote: "", bootSeconds: 1, totalSeconds: 2,
                                  tap: tap, junitXML: "", serialLog: "", expectedChecks: 2)
        #expect(!report.passed)
    }

    @Test func aPlanOfEveryCheckAllOkPasses() {
        let tap = TAPResult.parse("1..2\nok 1 - root is an overlay\nok 2 - motd installed\n")
        #expect(tap.failure(expecting: 2) == nil)
        #expect(tap.failure(expecting: 3) == "the guest planned 2 of the recipe's 3 checks")
    }

    @Test func failedAndMissingChecksAreNamed() {
        let tap = TAPResult.parse("1..3\nok 1 - a\nnot ok 2 - b\n# output of b\n")
        #expect(tap.failure(expecting: 3) == "b; 1 never reported")
        #expect(TAPResult.parse("kernel panic\n").failure(expecting: 1) == "no TAP plan printed")
    }
}
