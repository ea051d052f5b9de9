-- Headless Neovim (0.7) as a second LSP client of `wattson serve`: a hover, then (optionally) an
-- "Optimize for energy" whose workspace/applyEdit Neovim applies. Results go to $WATTSON_NVIM_OUT.
local out_path = os.getenv("WATTSON_NVIM_OUT")
local file = os.getenv("WATTSON_NVIM_FILE")
local python = os.getenv("WATTSON_NVIM_PYTHON")
local hover_line = tonumber(os.getenv("WATTSON_NVIM_HOVER_LINE"))
local hover_char = tonumber(os.getenv("WATTSON_NVIM_HOVER_CHAR"))
local do_optimize = os.getenv("WATTSON_NVIM_OPTIMIZE") == "1"

local results = {}
local function finish()
  local f = io.open(out_path, "w")
  f:write(vim.fn.json_encode(results))
  f:close()
  vim.cmd("qa!")
end

-- Record what the server opens and says, as an editor would show it.
results.shown_documents = {}
results.messages = {}
vim.lsp.handlers["window/showDocument"] = function(_, params)
  table.insert(results.shown_documents, params.uri)
  return { success = true }
end
vim.lsp.handlers["window/showMessage"] = function(_, params)
  table.insert(results.messages, params.message)
end

vim.cmd("edit " .. file)
vim.bo.filetype = "cuda"
local client_id = vim.lsp.start_client({
  name = "wattson",
  cmd = { python, "-m", "wattson", "serve" },
  root_dir = vim.fn.fnamemodify(file, ":h"),
})
vim.lsp.buf_attach_client(0, client_id)
local ok = vim.wait(20000, function()
  local c = vim.lsp.get_client_by_id(client_id)
  return c ~= nil and c.server_capabilities ~= nil and next(c.server_capabilities) ~= nil
end, 50)
results.initialized = ok
if not ok then finish() return end

local params = { textDocument = { uri = vim.uri_from_bufnr(0) }, position = { line = hover_line, character = hover_char } }
local replies = vim.lsp.buf_request_sync(0, "textDocument/hover", params, 20000) or {}
for _, reply in pairs(replies) do
  if reply.result and reply.result.contents then results.hover = reply.result.contents.value end
  if reply.err then results.hover_error = reply.err.message end
end

if do_optimize then
  local arg = { uri = vim.uri_from_bufnr(0), version = vim.lsp.util.buf_versions[vim.api.nvim_get_current_buf()] or 0 }
  local done = false
  vim.lsp.buf_request(0, "workspace/executeCommand", { command = "wattson.optimize", arguments = { arg } },
    function(err, result)
      results.optimize = result
      if err then results.optimize_error = err.message end
      done = true
    end)
  results.optimize_finished = vim.wait(60000, function() return done end, 100)
  results.text_after = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), "\n")
  results.modified = vim.bo.modified
end
finish()
