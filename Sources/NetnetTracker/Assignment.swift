/// Optimal assignment of rows (tracks) to columns (detections) for a cost matrix: among the
/// pairings that use only allowed pairs (cost ≤ `maxCost`), one with the most pairs and, among
/// those, the least total cost. The shortest-augmenting-path form of the Hungarian method
/// (Jonker–Volgenant's row-by-row augmentation with dual potentials), O(n² m) for n rows ≤ m
/// columns. Pure; any thread.
public enum Assignment {
    /// The pairs (row, column), rows increasing. `costs` is row-major `rows × columns`, each ≥ 0
    /// (the tracker's are 1 − IoU).
    public static func solve(costs: [Float], rows: Int, columns: Int, maxCost: Float) -> [(row: Int, column: Int)] {
        precondition(costs.count == rows * columns, "Assignment.solve: \(costs.count) costs for \(rows)×\(columns)")
        guard rows > 0, columns > 0 else { return [] }
        // A forbidden pair costs more than any set of allowed ones, so the optimum first takes as
        // many allowed pairs as it can, then the cheapest; forbidden pairs are dropped after.
        var allowedSum: Double = 0
        for c in costs where c <= maxCost { allowedSum += Double(max(c, 0)) }
        let forbidden = allowedSum + 1
        let transposed = rows > columns
        let n = transposed ? columns : rows, m = transposed ? rows : columns
        func cost(_ i: Int, _ j: Int) -> Double {
            let c = transposed ? costs[j * columns + i] : costs[i * columns + j]
            return c <= maxCost ? Double(c) : forbidden
        }
        // 1-based potentials u (rows), v (columns); way[j]: previous column on the path; p[j]: row of column j.
        var u = [Double](repeating: 0, count: n + 1), v = [Double](repeating: 0, count: m + 1)
        var p = [Int](repeating: 0, count: m + 1), way = [Int](repeating: 0, count: m + 1)
        var minv = [Double](repeating: 0, count: m + 1)
        var used = [Bool](repeating: false, count: m + 1)
        for i in 1...n {
            p[0] = i
            var j0 = 0
            for j in 0...m { minv[j] = .infinity; used[j] = false }
            repeat {
                used[j0] = true
                let i0 = p[j0]
                var delta = Double.infinity, j1 = 0
                for j in 1...m where !used[j] {
                    let reduced = cost(i0 - 1, j - 1) - u[i0] - v[j]
                    if reduced < minv[j] { minv[j] = reduced; way[j] = j0 }
                    if minv[j] < delta { delta = minv[j]; j1 = j }
                }
                for j in 0...m {
                    if used[j] { u[p[j]] += delta; v[j] -= delta } else { minv[j] -= delta }
                }
                j0 = j1
            } while p[j0] != 0
            repeat {
                let j1 = way[j0]
                p[j0] = p[j1]
                j0 = j1
            } while j0 != 0
        }
        var pairs: [(row: Int, column: Int)] = []
        for j in 1...m where p[j] != 0 {
            let (row, column) = transposed ? (j - 1, p[j] - 1) : (p[j] - 1, j - 1)
            if costs[row * columns + column] <= maxCost { pairs.append((row, column)) }
        }
        pairs.sort { $0.row < $1.row }
        return pairs
    }
}
