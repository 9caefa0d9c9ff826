import Foundation
import Testing
@testable import ObjectStore

/// SHA-256 and HMAC-SHA256 on the FIPS 180-4 examples, RFC 4231's test
/// cases, and Python's hashlib / hmac over inputs of every length around
/// the block boundaries.
@Suite struct SHA256Tests {
    func hex(_ b: [UInt8]) -> String { SigV4Signer.hex(b) }

    @Test func fipsExamples() {
        #expect(hex(SHA256Hash.hash(Array("".utf8))) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hex(SHA256Hash.hash(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(hex(SHA256Hash.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(hex(SHA256Hash.hash([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func rfc4231HMACCases() {
        #expect(hex(SHA256Hash.hmac(key: [UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8)))
                == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        #expect(hex(SHA256Hash.hmac(key: Array("Jefe".utf8), Array("what do ya want for nothing?".utf8)))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(hex(SHA256Hash.hmac(key: [UInt8](repeating: 0xaa, count: 131),
                                    Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8)))
                == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    }

    @Test func equalsPythonsHashlibAtEveryLengthAroundTheBlocks() throws {
        let inputs = (0..<200).map { n in (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ n) } }
        let script = """
        import hashlib, hmac, json, sys
        xs = json.loads(sys.stdin.read())
        print(json.dumps([[hashlib.sha256(bytes(x)).hexdigest(), hmac.new(bytes(x[:70]), bytes(x), hashlib.sha256).hexdigest()] for x in xs]))
        """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: SigV4Tests.python)
        p.arguments = ["-c", script]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        try p.run()
        input.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: inputs))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let want = try #require(try JSONSerialization.jsonObject(with: data) as? [[String]])
        #expect(want.count == inputs.count)
        for (x, w) in zip(inputs, want) {
            #expect(hex(SHA256Hash.hash(x)) == w[0], "length \(x.count)")
            #expect(hex(SHA256Hash.hmac(key: Array(x.prefix(70)), x)) == w[1], "hmac length \(x.count)")
        }
    }

    @Test func pieceByPieceEqualsAtOnce() {
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) }
        let whole = SHA256Hash.hash(data)
        for cut in [1, 3, 63, 64, 65, 127, 500] {
            var s = SHA256Hash()
            var i = 0
            while i < data.count {
                let end = min(data.count, i + cut)
                s.update(data[i..<end])  // contiguous slices
                i = end
            }
            #expect(s.finish() == whole, "pieces of \(cut)")
            var t = SHA256Hash()
            t.update(data.prefix(100).lazy.map { $0 })  // a non-contiguous sequence
            t.update(data[100...])
            #expect(t.finish() == whole)
        }
    }
}
