-- wrk: POST /auth/login, cycling through the benchmark accounts bench0..bench15.
local n = 0
request = function()
  n = n + 1
  local body = string.format(
    '{"email": "bench%d@example.com", "password": "correct horse battery staple"}', n % 16)
  return wrk.format("POST", "/auth/login", {["Content-Type"] = "application/json"}, body)
end
