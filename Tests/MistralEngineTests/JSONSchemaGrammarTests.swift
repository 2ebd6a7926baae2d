// JSON schema -> GBNF: the converted grammar accepts instances that satisfy the schema (in several whitespace
// styles) and refuses ones that break it; bad schemas are refused with a message naming the place.
import XCTest
import MistralEngine

final class JSONSchemaGrammarTests: XCTestCase {
    func check(_ schema: String, valid: [String], invalid: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let gbnf = try JSONSchemaGrammar.convert(schema)
        let grammar = try GBNF.parse(gbnf)
        let trie = TokenTrie(tokenizer: PieceTokenizer(pieces: [[]]))
        let m = try GrammarMatcher(grammar: grammar, trie: trie, logitCount: 1)
        for text in valid {
            m.reset()
            XCTAssertTrue(m.accept(bytes: Array(text.utf8)) && m.canFinish, "should accept \(text)\n\(gbnf)", file: file, line: line)
        }
        for text in invalid {
            m.reset()
            XCTAssertFalse(m.accept(bytes: Array(text.utf8)) && m.canFinish, "should refuse \(text)\n\(gbnf)", file: file, line: line)
        }
    }

    func testObjectsRequiredOptionalAndNoAdditionalProperties() throws {
        let schema = #"{"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"},"#
            + #" "email": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}}, "required": ["name"]}"#
        try check(schema, valid: [
            #"{"name": "Ann"}"#, #"{"name":"Ann","age":3}"#, "{\n  \"name\": \"Ann\",\n  \"tags\": [\"a\", \"b\"]\n}",
            #"{"name": "A", "age": -12, "email": "x@y", "tags": []}"#, #"{"name": "A", "email": "e"}"#,
        ], invalid: [
            #"{}"#, #"{"age": 3}"#, #"{"name": "A", "other": 1}"#, #"{"age": 3, "name": "A"}"#,  // order as declared
            #"{"name": 5}"#, #"{"name": "A", "age": 1.5}"#, #"{"name": "A", "age": 01}"#,
            #"{"name": "A"} "#, "{\"name\": \"A\"," + String(repeating: " ", count: 30) + "\"age\": 1}",  // bounded space
        ])
    }

    func testAdditionalPropertiesWhenAsked() throws {
        try check(#"{"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": {"type": "boolean"}}"#,
                  valid: [#"{"a": 1}"#, #"{"b": true}"#, #"{"a": 1, "ab": false, "c": true}"#, #"{}"#],
                  invalid: [#"{"b": 1}"#, #"{"a": true}"#])
        try check(#"{"type": "object"}"#, valid: [#"{}"#, #"{"x": [1, {"y": null}], "z": "w"}"#], invalid: [#"[]"#, #""x""#])
    }

    func testEnumConstAnyOfArraysAndTypes() throws {
        try check(#"{"enum": ["red", "green", 3, null, "caf\u00e9"]}"#, valid: [#""red""#, "3", "null", #""caf\u00e9""#],
                  invalid: [#""blue""#, "4", #""Red""#])
        try check(#"{"const": {"a": [1, 2]}}"#, valid: [#"{"a": [1, 2]}"#], invalid: [#"{"a": [1,2]}"#])
        try check(#"{"anyOf": [{"type": "integer"}, {"type": "boolean"}]}"#, valid: ["12", "true"], invalid: [#""1""#])
        try check(#"{"oneOf": [{"type": "null"}, {"type": "string", "maxLength": 2}]}"#, valid: ["null", #""ab""#], invalid: [#""abc""#])
        try check(#"{"type": ["number", "null"]}"#, valid: ["1.5e-3", "-0", "null"], invalid: ["1.", "+1", "true"])
        try check(#"{"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 3}"#,
                  valid: ["[1, 2]", "[1,2,3]", "[ 1, 2 ]"], invalid: ["[]", "[1]", "[1, 2, 3, 4]", "[1, \"a\"]"])
        try check(#"{"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]}"#,
                  valid: [#"["a", 1]"#], invalid: [#"[1, "a"]"#, #"["a"]"#])
        try check(#"{"type": "string", "minLength": 2, "maxLength": 4}"#,
                  valid: [#""ab""#, #""abcd""#, #""\n\u0041""#, #""\u00e9\u00e9""#], invalid: [#""a""#, #""abcde""#])
    }

    func testFormatsAndRefs() throws {
        try check(#"{"type": "string", "format": "date"}"#, valid: [#""2024-02-29""#], invalid: [#""2024-13-01""#, #""24-01-01""#])
        try check(#"{"type": "string", "format": "time"}"#, valid: [#""23:59:59Z""#, #""01:02:03.123+05:30""#],
                  invalid: [#""24:00:00Z""#, #""12:00""#])
        try check(#"{"type": "string", "format": "date-time"}"#, valid: [#""2024-01-31T10:00:00Z""#], invalid: [#""2024-01-31 10:00:00Z""#])
        try check(#"{"type": "string", "format": "uuid"}"#, valid: [#""123e4567-e89b-12d3-a456-426614174000""#],
                  invalid: [#""123e4567e89b12d3a456426614174000""#])
        let tree = #"{"$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"},"#
            + ##" "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}}, "required": ["v"]}},"##
            + ##" "$ref": "#/$defs/node"}"##
        try check(tree, valid: [#"{"v": 1}"#, #"{"v": 1, "kids": [{"v": 2}, {"v": 3, "kids": [{"v": 4}]}]}"#],
                  invalid: [#"{"v": 1, "kids": [{}]}"#, #"{"v": 1, "kids": [{"v": 1}, {"v": 2}, {"v": 3}]}"#])
        try check(##"{"definitions": {"b": {"type": "boolean"}}, "type": "object", "properties": {"x": {"$ref": "#/definitions/b"}}}"##,
                  valid: [#"{"x": true}"#, "{}"], invalid: [#"{"x": 1}"#])
    }

    func testGrammarShapeFollowsLlamaCpp() throws {
        let g = try JSONSchemaGrammar.convert(#"{"type": "object", "properties": {"a b": {"type": "boolean"}}, "required": ["a b"]}"#)
        let lines = Set(g.split(separator: "\n").map(String.init))
        XCTAssertTrue(lines.contains(#"space ::= | " " | "\n"{1,2} [ \t]{0,20}"#), g)
        XCTAssertTrue(lines.contains(#"a-b-kv ::= "\"a b\"" space ":" space boolean"#), g)
        XCTAssertTrue(lines.contains(#"root ::= "{" space a-b-kv space "}""#), g)
        XCTAssertTrue(lines.contains(#"boolean ::= ("true" | "false")"#), g)
    }

    func testBadSchemasAreRefusedWithTheirPlace() {
        let cases: [(String, String)] = [
            ("{", "json_schema: invalid JSON at byte 1"),
            ("[1]", "a schema must be an object at #"),
            (#"{"type": "strin"}"#, "unknown type \"strin\" at #"),
            (#"{"type": "object", "properties": {"a": {"type": 5}}}"#, "type must be a string or a list of strings at #/properties/a"),
            (##"{"$ref": "#/$defs/missing"}"##, "does not resolve"),
            (#"{"$ref": "https://example.com/s.json"}"#, "only local $ref"),
            (#"{"type": "string", "pattern": "^a+$"}"#, "pattern is not supported"),
            (#"{"allOf": [{"type": "string"}]}"#, "allOf is not supported"),
            (#"{"enum": []}"#, "enum must be a non-empty array"),
            (#"{"type": "array", "items": {}, "minItems": 3, "maxItems": 1}"#, "maxItems 1 is below minItems 3"),
            (#"{"type": "string", "maxLength": -1}"#, "maxLength must be a non-negative integer"),
            (#"{"anyOf": []}"#, "anyOf/oneOf must be a non-empty array"),
        ]
        for (schema, expected) in cases {
            XCTAssertThrowsError(try JSONSchemaGrammar.convert(schema), schema) { error in
                guard let e = error as? MistralError else { return XCTFail("\(error)") }
                XCTAssertEqual(e.status, .invalidArgument)
                XCTAssertTrue(e.message.contains(expected), "\(schema): \(e.message)")
            }
        }
        // sizes beyond the grammar's bounds are refused by the grammar parser, not expanded
        XCTAssertThrowsError(try GBNF.parse(try JSONSchemaGrammar.convert(#"{"type": "string", "minLength": 100000}"#)))
        // a $ref cycle with no schema in it would be a left-recursive grammar
        XCTAssertThrowsError(try GBNF.parse(try JSONSchemaGrammar.convert(##"{"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}"##)))
    }
}
