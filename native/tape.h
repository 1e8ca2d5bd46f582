// The op tapes between the native codec and its JS side (lib/native.ts keeps the same numbers).
//
// Node-API calls cost about 100-200 ns each for a property read or write and far more to make a
// Buffer, while JS does either in a few ns. So the codec moves data across in bulk: one
// Float64Array of ops and one string holding all the text.
//
// Decode tape (C++ -> JS, postfix: a container's op follows its elements). The decoder has checked
// everything; buildTerm in lib/native.ts only follows the ops. Text positions and lengths count
// UTF-16 units of the text string; offsets count bytes of the source (the bytes decoded).
//
// Encode tape (JS -> C++, prefix): written by the JS walk over JSON-like values (plus Atom, Tuple
// and Float) in lib/codec/native.ts; strings are taken in order from one joined string.
#pragma once

namespace erlpeb {

namespace dop {
constexpr int kInt = 1;         // value: a number (a safe integer)
constexpr int kFloat = 2;       // value: a number (not integral)
constexpr int kFloatObj = 3;    // value: a Float (integral)
constexpr int kBigInt = 4;      // textPos, textLen (hex digits of the magnitude), negative
constexpr int kTrue = 5;
constexpr int kFalse = 6;
constexpr int kNull = 7;
constexpr int kAtom = 8;        // textPos, textLen
constexpr int kString = 9;      // textPos, textLen
constexpr int kBinary = 10;     // offset, length: a Buffer copy of the source bytes
constexpr int kBitBinary = 11;  // offset, length, bits
constexpr int kByteList = 12;   // offset, length: number[] of the source bytes
constexpr int kNil = 13;
constexpr int kList = 14;       // n: the last n values become an array
constexpr int kImproper = 15;   // n: n values and then a tail become an ImproperList
constexpr int kTuple = 16;      // n
constexpr int kMap = 17;        // pairs: the last 2 x pairs values (key, value, ...) become a Map
constexpr int kObject = 18;     // pairs: as kMap, keys are strings, a plain object
constexpr int kSetKey = 19;     // pairs, j: the value on top replaces key j of the pairs below it
constexpr int kPid = 20;        // nodePos, nodeLen, id, serial, creation
constexpr int kPort = 21;       // nodePos, nodeLen, idHigh32, idLow32, creation
constexpr int kRef = 22;        // nodePos, nodeLen, creation, count, id x count
constexpr int kExport = 23;     // modulePos, moduleLen, functionPos, functionLen, arity
constexpr int kFun = 24;        // offset, length (of its bytes), modulePos, moduleLen, arity, index
constexpr int kKeyNew = 25;     // slot, textPos, textLen: an object key, remembered in that key slot
constexpr int kKey = 26;        // slot: the object key remembered in that slot (by this or an earlier tape)
}  // namespace dop

namespace eop {
constexpr int kString = 1;  // length: the next `length` UTF-16 units of the text -> BINARY_EXT
constexpr int kNumber = 2;  // value
constexpr int kTrue = 3;
constexpr int kFalse = 4;
constexpr int kUndefined = 5;  // null or undefined -> the atom undefined
constexpr int kNil = 6;
constexpr int kList = 7;   // n (> 0): n values follow, then kNil
constexpr int kMap = 8;    // pairs: pairs x (kString key, value) follow
constexpr int kAtom = 9;   // length: the atom's name, from the text
constexpr int kTuple = 10; // n: n values follow
constexpr int kFloat = 11; // value: a Float's value (always NEW_FLOAT_EXT)
constexpr int kBytes = 12; // index: the Buffer/Uint8Array at that index of the tape's byte arrays -> BINARY_EXT
}  // namespace eop

}  // namespace erlpeb
