// Tags of Erlang's external term format, shared by the codec and the connection's packet code
// (which must not depend on Node-API: it runs on the I/O thread).
#pragma once
#include <cstdint>

namespace erlpeb {

namespace tag {
constexpr uint8_t kVersion = 131;
constexpr uint8_t kCompressed = 80;
constexpr uint8_t kNewFloat = 70;
constexpr uint8_t kBitBinary = 77;
constexpr uint8_t kNewPid = 88;
constexpr uint8_t kNewPort = 89;
constexpr uint8_t kNewerReference = 90;
constexpr uint8_t kSmallInteger = 97;
constexpr uint8_t kInteger = 98;
constexpr uint8_t kFloat = 99;
constexpr uint8_t kAtom = 100;
constexpr uint8_t kReference = 101;
constexpr uint8_t kPort = 102;
constexpr uint8_t kPid = 103;
constexpr uint8_t kSmallTuple = 104;
constexpr uint8_t kLargeTuple = 105;
constexpr uint8_t kNil = 106;
constexpr uint8_t kString = 107;
constexpr uint8_t kList = 108;
constexpr uint8_t kBinary = 109;
constexpr uint8_t kSmallBig = 110;
constexpr uint8_t kLargeBig = 111;
constexpr uint8_t kNewFun = 112;
constexpr uint8_t kExport = 113;
constexpr uint8_t kNewReference = 114;
constexpr uint8_t kSmallAtom = 115;
constexpr uint8_t kMap = 116;
constexpr uint8_t kAtomUtf8 = 118;
constexpr uint8_t kSmallAtomUtf8 = 119;
constexpr uint8_t kV4Port = 120;
}  // namespace tag

}  // namespace erlpeb
