import Testing
import NetnetEngine
import NetnetRing
@testable import NetnetPipeline

@Suite struct InferenceWorkerTests {
    private func macs(_ network: NetworkName, width: Double) -> Int {
        NetworkPlan(ModelDescription(network: network, width: width, classes: ["person"])).multiplyAccumulates
    }

    @Test("automatic workers: two for files with a small network on 2+ cores, else one")
    func automatic() {
        let defaultModel = macs(.netnetVGG16_300, width: 0.125), half = macs(.netnetVGG16_300, width: 0.5)
        let full = macs(.netnetVGG16_300, width: 1)
        #expect(AnnotateJob.automaticWorkers(policy: .block, multiplyAccumulates: defaultModel, processors: 2) == 2)
        #expect(AnnotateJob.automaticWorkers(policy: .block, multiplyAccumulates: half, processors: 2) == 2)
        #expect(AnnotateJob.automaticWorkers(policy: .block, multiplyAccumulates: full, processors: 16) == 1)  // splits well; memory
        #expect(AnnotateJob.automaticWorkers(policy: .latest, multiplyAccumulates: defaultModel, processors: 2) == 1)  // latency
        #expect(AnnotateJob.automaticWorkers(policy: .block, multiplyAccumulates: defaultModel, processors: 1) == 1)
    }
}
