/// A cache-blocked matrix multiply for the convolution kernels: C[M×N] += A[M×K] · B[K×N].
///
/// Both operands are first packed into panels: A into blocks of `mr` rows stored k-major
/// (`[k][mr]`), B into strips of `nr` columns stored k-major (`[k][nr]`), zero-padded to whole
/// blocks. The micro-kernel then keeps an `mr`×`nr` tile of C in SIMD registers while it walks k,
/// reading both panels sequentially. K is blocked by `kc` so that one B strip block stays in L1
/// while every A panel streams past it.
///
/// Convolution writes its im2col matrix straight into the packed B layout (`packedBIndex`), so the
/// column matrix is never materialised unpacked.
enum NeuralGemm {
    static let mr = 4
    static let nr = 8
    static let kc = 256

    /// Elements of a packed A for an m×k matrix.
    static func packedACount(m: Int, k: Int) -> Int { (m + mr - 1) / mr * mr * k }
    /// Elements of a packed B for a k×n matrix.
    static func packedBCount(k: Int, n: Int) -> Int { (n + nr - 1) / nr * nr * k }

    /// Where element (row, col) of a k×n matrix lives in its packed B.
    @inline(__always) static func packedBIndex(row: Int, col: Int, k: Int) -> Int {
        (col / nr) * (k * nr) + row * nr + (col % nr)
    }

    /// Packs an m×k matrix whose element (i, j) is `a[i * rowStride + j * colStride]`.
    static func packA<T: NeuralScalar>(_ a: UnsafePointer<T>, m: Int, k: Int, rowStride: Int, colStride: Int,
                                      into dst: UnsafeMutablePointer<T>) {
        var o = 0
        for p in stride(from: 0, to: m, by: mr) {
            let rows = min(mr, m - p)
            for j in 0..<k {
                for r in 0..<mr {
                    dst[o] = r < rows ? a[(p + r) * rowStride + j * colStride] : 0
                    o += 1
                }
            }
        }
    }

    /// Packs a k×n matrix whose element (i, j) is `b[i * rowStride + j * colStride]`.
    static func packB<T: NeuralScalar>(_ b: UnsafePointer<T>, k: Int, n: Int, rowStride: Int, colStride: Int,
                                      into dst: UnsafeMutablePointer<T>) {
        var o = 0
        for s in stride(from: 0, to: n, by: nr) {
            let cols = min(nr, n - s)
            for i in 0..<k {
                let row = b + i * rowStride
                for c in 0..<nr {
                    dst[o] = c < cols ? row[(s + c) * colStride] : 0
                    o += 1
                }
            }
        }
    }

    /// C[M×N] (row stride `ldc`) += packed A · packed B.
    static func multiply<T: NeuralScalar>(m: Int, n: Int, k: Int, packedA: UnsafePointer<T>,
                                         packedB: UnsafePointer<T>, c: UnsafeMutablePointer<T>, ldc: Int) {
        let panels = (m + mr - 1) / mr, strips = (n + nr - 1) / nr
        var k0 = 0
        while k0 < k {
            let depth = min(kc, k - k0)
            for s in 0..<strips {
                let b = packedB + s * k * nr + k0 * nr
                let cols = min(nr, n - s * nr)
                for p in 0..<panels {
                    micro(depth, packedA + p * k * mr + k0 * mr, b, c + p * mr * ldc + s * nr, ldc,
                          rows: min(mr, m - p * mr), cols: cols)
                }
            }
            k0 += depth
        }
    }

    /// One mr×nr tile: C tile += A panel block · B strip block over `depth` steps of k.
    @inline(__always)
    static func micro<T: NeuralScalar>(_ depth: Int, _ a: UnsafePointer<T>, _ b: UnsafePointer<T>,
                                      _ c: UnsafeMutablePointer<T>, _ ldc: Int, rows: Int, cols: Int) {
        var c0 = SIMD8<T>(), c1 = SIMD8<T>(), c2 = SIMD8<T>(), c3 = SIMD8<T>()
        let rb = UnsafeRawPointer(b)
        let step = 8 * MemoryLayout<T>.stride
        var ap = a
        for kk in 0..<depth {
            let bv = rb.loadUnaligned(fromByteOffset: kk * step, as: SIMD8<T>.self)
            c0 += bv * ap[0]
            c1 += bv * ap[1]
            c2 += bv * ap[2]
            c3 += bv * ap[3]
            ap += 4
        }
        if rows == 4 && cols == 8 {
            func add(_ v: SIMD8<T>, _ row: Int) {
                let p = UnsafeMutableRawPointer(c + row * ldc)
                p.storeBytes(of: p.loadUnaligned(as: SIMD8<T>.self) + v, as: SIMD8<T>.self)
            }
            add(c0, 0); add(c1, 1); add(c2, 2); add(c3, 3)
        } else {
            func add(_ v: SIMD8<T>, _ row: Int) {
                guard row < rows else { return }
                for j in 0..<cols { c[row * ldc + j] += v[j] }
            }
            add(c0, 0); add(c1, 1); add(c2, 2); add(c3, 3)
        }
    }
}
