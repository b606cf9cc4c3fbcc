"""wrk Lua scripts for bench/peer.py: the same requests for Courier and NanoMDM
over plain HTTP with the device certificate in X-Client-Cert.

Every script embeds the device list (UDID, URL-escaped PEM). The enqueue and
drain scripts run one connection per wrk thread (-t N -c N) and give each
thread its own devices (index % N == thread), so a device never has two
requests in flight: NanoMDM's kv queue can lose a command when two enqueues
for one device overlap, and a device hands out one command at a time.
"""

COMMON = r"""
local devices = dofile(%(devices)q)
local threads = {}
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
local CT = "application/x-apple-aspen-mdm"
local function plist(inner)
  return '<?xml version="1.0" encoding="UTF-8"?>\n' ..
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n' ..
    '<plist version="1.0"><dict>' .. inner .. '</dict></plist>\n'
end
local function idle(d)
  return wrk.format("PUT", "/mdm", {["X-Client-Cert"] = d[2], ["Content-Type"] = CT},
    plist("<key>Status</key><string>Idle</string><key>UDID</key><string>" .. d[1] .. "</string>"))
end
local function ack(d, uuid)
  return wrk.format("PUT", "/mdm", {["X-Client-Cert"] = d[2], ["Content-Type"] = CT},
    plist("<key>Status</key><string>Acknowledged</string><key>UDID</key><string>" .. d[1] ..
          "</string><key>CommandUUID</key><string>" .. uuid .. "</string>"))
end
local function mine()
  local n = tonumber(nthreads)
  local out = {}
  for i = 1, #devices do
    if (i - 1) %% n == id then table.insert(out, devices[i]) end
  end
  return out
end
"""

# Idle: every device's Idle prebuilt; each thread starts at its own offset.
IDLE = COMMON + r"""
local reqs, i = {}, 0
function init(args)
  for k, d in ipairs(devices) do reqs[k] = idle(d) end
  i = id * 97
end
function request()
  i = i + 1
  return reqs[(i %% #reqs) + 1]
end
"""

# Raw enqueue, one device at a time per connection, round-robin over the
# thread's devices; a unique CommandUUID per request.
ENQUEUE = COMMON + r"""
local my, k = nil, 0
bad = 0
local AUTH = %(auth)q
function init(args) my = mine(); math.randomseed(%(seed)s + id) end
function request()
  k = k + 1
  local d = my[(k %% #my) + 1]
  -- random leading hex (as real CommandUUIDs: NanoMDM's filekv files keys
  -- by their first four characters), unique by thread and counter
  local uuid = string.format("%%08X-%%04X-4%%03X-8%%03X-%%012X", math.random(0, 0x7fffffff),
    math.random(0, 0xffff), id, math.random(0, 0xfff), k)
  local body = plist("<key>Command</key><dict><key>RequestType</key><string>DeviceInformation</string>" ..
    "<key>Queries</key><array><string>OSVersion</string><string>SerialNumber</string></array></dict>" ..
    "<key>CommandUUID</key><string>" .. uuid .. "</string>")
  return wrk.format("PUT", "/v1/enqueue/" .. d[1] .. "?nopush=1",
    {["Authorization"] = AUTH, ["Content-Type"] = "application/xml"}, body)
end
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
function done(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do b = b + t:get("bad") end
  io.write(string.format("PEER bad=%%d\n", b))
end
"""

# Command round trips: Idle, then Acknowledged for each command handed out,
# device after device; counts acknowledgements and notes when a thread ran
# out of queued commands.
DRAIN = COMMON + r"""
local my, p, pending, sent_ack = nil, 1, nil, false
acks, bad, dry = 0, 0, 0
function init(args) my = mine() end
function request()
  local d = my[p]
  if pending then
    sent_ack = true
    return ack(d, pending)
  end
  sent_ack = false
  return idle(d)
end
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
  if sent_ack and status == 200 then acks = acks + 1 end
  local uuid = body and body:match("<key>CommandUUID</key>%%s*<string>([^<]+)</string>")
  if uuid then
    pending = uuid
  else
    pending = nil
    p = p + 1
    if p > #my then p = 1; dry = 1 end
  end
end
function done(summary, latency, requests)
  local a, b, dr = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("acks"); b = b + t:get("bad"); dr = dr + t:get("dry")
  end
  io.write(string.format("PEER acks=%%d bad=%%d dry_threads=%%d\n", a, b, dr))
end
"""


def lua_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def write_devices(path, devices):
    """devices: [(udid, escaped_pem)] -> a Lua file returning the list."""
    with open(path, "w") as f:
        f.write("return {\n")
        for udid, hdr in devices:
            f.write("{" + lua_string(udid) + "," + lua_string(hdr) + "},\n")
        f.write("}\n")


def write_script(path, template, devices_file, nthreads, **kw):
    # Lua's %q is Python's repr-free quoting here: use lua_string.
    text = template.replace("%(devices)q", lua_string(devices_file)).replace(
        "%(auth)q", lua_string(kw.get("auth", "")))
    text = text.replace("%(seed)s", str(kw.get("seed", 1)))
    text = text.replace("%%", "%")
    with open(path, "w") as f:
        f.write(f"nthreads = {nthreads}\n")
        f.write(text)
