"""NovaStar sending-card protocol (RS-232 / TCP 5200): a pure codec, no I/O.

Source: NovaStar "RS232 Protocol for Nova M3 Control System" V1.9 (cited as "spec x.y").

| module | what |
| --- | --- |
| `framing` | frames, checksum, `NovastarCodec` (sans-I/O decoder), `StreamDecoder` |
| `values` | register value decoders and encoders; block layouts as `Field` tables |
| `registers` | the one register table: name, address, length, device, section, decoder |

Everything is re-exported here, so `from firmware_protocols import novastar as ns` then
`ns.encode(...)`, `ns.decode_monitoring_block(...)`, `ns.MONITORING_BLOCK` all work.
"""

from firmware_protocols.novastar.framing import *  # noqa: F403
from firmware_protocols.novastar.registers import *  # noqa: F403
from firmware_protocols.novastar.values import *  # noqa: F403
from ledwatch.errors import UsageError as UsageError
