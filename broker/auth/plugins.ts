import { basename, isAbsolute, dirname, resolve } from 'node:path';
import { ConfigError } from '../config/errors.js';
import type { KeySpec, ValueReader } from '../config/spec.js';
import type { BrokerConfig, BrokerTarget, SecurityConfig } from '../config/types.js';
import type { ConfigLine } from '../config/lexer.js';

/**
 * Mosquitto plugins in a config. mqprobe loads no shared objects: Mosquitto 2.1's file plugins
 * (mosquitto_password_file, mosquitto_acl_file) are mapped onto the built-in password and ACL
 * files, the dynamic security plugin onto mqprobe's own implementation of it
 * (broker/auth/dynamic-security/), and any other plugin stops the start, naming it — as Mosquitto
 * stops when it cannot load one. Starting without an auth or ACL plugin would change who gets in.
 */

/** A file plugin and the option that names its file (the plugins' own option names). */
const FILE_PLUGINS = {
  mosquitto_password_file: { option: 'password_file', field: 'passwordFile' },
  mosquitto_acl_file: { option: 'acl_file', field: 'aclFile' },
  mosquitto_dynamic_security: { option: 'config_file', field: 'dynamicSecurityFile' },
} as const;
type FilePluginName = keyof typeof FILE_PLUGINS;

interface FilePlugin {
  name: FilePluginName;
  /** The line that loaded it (plugin, global_plugin, auth_plugin or plugin_load). */
  pos: ConfigLine;
  /** The file its option names. */
  file?: string;
  /** The security sections it protects; `'every-listener'` for a global_plugin under per_listener_settings. */
  uses: (SecurityConfig | 'every-listener')[];
}

interface PluginState {
  all: FilePlugin[];
  /** `plugin_load` names. */
  named: Map<string, FilePlugin>;
  /** The plugin that `plugin_opt_*` lines configure, per config file (as Mosquitto tracks it). */
  current: Map<string, FilePlugin>;
}

const states = new WeakMap<BrokerConfig, PluginState>();
function stateOf(config: BrokerConfig): PluginState {
  let s = states.get(config);
  if (!s) states.set(config, (s = { all: [], named: new Map(), current: new Map() }));
  return s;
}

/** A path value that may contain spaces (Mosquitto 2.1 takes the rest of the line), relative to its config file. */
function pathValue(rest: string, line: ConfigLine): string {
  return isAbsolute(rest) ? rest : resolve(dirname(line.file), rest);
}

/** Identifies a plugin by its file name (`…/mosquitto_password_file.so`); anything else stops the start. */
function filePlugin(v: ValueReader, path: string): FilePlugin {
  const stem = basename(path).replace(/\.(so|dll|dylib)$/, '');
  if (stem in FILE_PLUGINS) return { name: stem as FilePluginName, pos: v.line, uses: [] };
  // the dynamic security plugin under another file name (a self-built libmosquitto_dynamic_security.so, …)
  if (/dynamic[_-]?security/.test(stem)) return { name: 'mosquitto_dynamic_security', pos: v.line, uses: [] };
  return v.fail(
    `plugin ${path} cannot be loaded: mqprobe runs no Mosquitto plugins (only mosquitto_password_file, mosquitto_acl_file and mosquitto_dynamic_security, implemented by mqprobe itself); starting without it would change who gets in`,
  );
}

function load(t: BrokerTarget, v: ValueReader, plugin: FilePlugin): FilePlugin {
  const state = stateOf(t.config);
  state.all.push(plugin);
  state.current.set(v.line.file, plugin);
  return plugin;
}

/** True while a `listener` block is open (the default listener made by `port` is not in the list yet). */
function inListenerBlock(t: BrokerTarget): boolean {
  return t.config.listeners.includes(t.listener());
}

const pluginLine = (key: 'plugin' | 'auth_plugin' | 'global_plugin', doc: string): KeySpec<BrokerTarget> => ({
  key,
  usage: '<path>',
  doc,
  scope: key === 'global_plugin' ? 'global' : 'security',
  repeatable: true,
  set(t, v) {
    const path = v.rest();
    const plugin = load(t, v, filePlugin(v, path));
    if (key === 'global_plugin') {
      plugin.uses.push(t.config.perListenerSettings ? 'every-listener' : t.config.security);
    } else {
      if (t.config.perListenerSettings && !inListenerBlock(t))
        v.fail(`with per_listener_settings true, ${key} must follow the listener it applies to (or use global_plugin)`);
      plugin.uses.push(t.security());
    }
  },
});

/** Config keys of Mosquitto plugins: file plugins map onto password_file/acl_file, others stop the start. */
export const pluginKeys: KeySpec<BrokerTarget>[] = [
  pluginLine(
    'plugin',
    "Mosquitto 2.1's `mosquitto_password_file` and `mosquitto_acl_file` plugins (any directory, `.so` or not) become the built-in password and ACL files of this section, named by `plugin_opt_password_file` / `plugin_opt_acl_file`. `mosquitto_dynamic_security` (with `plugin_opt_config_file`) is mqprobe's own implementation of Mosquitto's dynamic security plugin (docs/dynamic-security.md). Any other plugin (go-auth, …) stops the start with an error naming it: mqprobe loads no plugins. With per_listener_settings true it applies to the listener it follows.",
  ),
  pluginLine('auth_plugin', 'Deprecated Mosquitto name of `plugin`, read the same way.'),
  pluginLine('global_plugin', 'As `plugin`, but for every listener whatever per_listener_settings says (Mosquitto 2.1).'),
  {
    key: 'plugin_load',
    usage: '<name> <path>',
    doc: 'Mosquitto 2.1: loads a plugin under a name without applying it; `plugin_use <name>` in a listener block applies it there. Same plugins as `plugin`.',
    scope: 'global',
    repeatable: true,
    set(t, v) {
      v.count(2, Infinity);
      const name = v.word(0);
      const state = stateOf(t.config);
      if (state.named.has(name)) v.fail(`plugin name "${name}" is already loaded (line ${state.named.get(name)!.pos.line})`);
      state.named.set(name, load(t, v, filePlugin(v, v.rest().slice(name.length).trim())));
    },
  },
  {
    key: 'plugin_use',
    usage: '<name>',
    doc: 'Mosquitto 2.1: applies a plugin loaded by `plugin_load` to the listener block it stands in. mqprobe needs per_listener_settings true for it (its password and ACL files are otherwise global).',
    scope: 'listener',
    repeatable: true,
    set(t, v) {
      v.count(1);
      const state = stateOf(t.config);
      const plugin = state.named.get(v.word());
      if (!inListenerBlock(t)) v.fail('plugin_use must stand in a listener block');
      if (!plugin) return v.fail(`plugin "${v.word()}" is not loaded (plugin_load <name> <path> must come first)`);
      if (!t.config.perListenerSettings)
        v.fail('applying a password or ACL file plugin to one listener needs per_listener_settings true in mqprobe');
      plugin.uses.push(t.listener().security);
      state.current.set(v.line.file, plugin);
    },
  },
  {
    key: 'plugin_opt_*',
    usage: '<value>',
    doc: 'An option of the plugin loaded last in this file: `plugin_opt_password_file <path>` for mosquitto_password_file, `plugin_opt_acl_file <path>` for mosquitto_acl_file, `plugin_opt_config_file <path>` for mosquitto_dynamic_security (relative paths from the config file). Any other option of the file plugins is an error, as they refuse it; the dynamic security plugin ignores other options (a warning). `auth_opt_*` is the deprecated name.',
    scope: 'global',
    repeatable: true,
    set(t, v) {
      const option = v.key.replace(/^(plugin|auth)_opt_/, '');
      const plugin = stateOf(t.config).current.get(v.line.file);
      if (!plugin) return v.fail('needs a plugin, global_plugin or plugin_load line before it');
      const expected = FILE_PLUGINS[plugin.name].option;
      if (option !== expected && plugin.name === 'mosquitto_dynamic_security') {
        // the dynamic security plugin reads config_file and passes over any other option
        t.config.warnings.push({
          ...v.line,
          key: v.key,
          message: `${plugin.name} takes only plugin_opt_config_file; ignored, as the plugin ignores it`,
        });
        return;
      }
      if (option !== expected) v.fail(`${plugin.name} has no option "${option}" (it takes plugin_opt_${expected})`);
      plugin.file = pathValue(v.rest(), v.line);
    },
  },
];

/** The spec key that handles a prefixed key (`plugin_opt_password_file` → `plugin_opt_*`). */
export function prefixedKey(key: string): string | undefined {
  return /^(plugin|auth)_opt_./.test(key) ? 'plugin_opt_*' : undefined;
}

/**
 * Applies the file plugins to the security sections they protect, once every line (and
 * listener) is known. One section holds one password file and one ACL file: a second,
 * different one is an error, since mqprobe cannot chain them as Mosquitto chains plugins.
 */
export function applyPlugins(config: BrokerConfig): void {
  for (const plugin of stateOf(config).all) {
    const { option, field } = FILE_PLUGINS[plugin.name];
    if (!plugin.file) throw new ConfigError(plugin.pos, plugin.pos.key, `${plugin.name} needs plugin_opt_${option} <path>`);
    const sections = plugin.uses.flatMap((u) => (u === 'every-listener' ? config.listeners.map((l) => l.security) : [u]));
    for (const section of sections) {
      const already = section[field];
      if (already !== undefined && already !== plugin.file) {
        throw new ConfigError(
          plugin.pos,
          plugin.pos.key,
          `${plugin.name} names ${plugin.file}, but this section already uses ${already}: mqprobe reads one ${option} per section`,
        );
      }
      section[field] = plugin.file;
    }
  }
  for (const section of [config.security, ...config.listeners.map((l) => l.security)]) {
    if (section.dynamicSecurityFile && (section.passwordFile || section.aclFile))
      throw new ConfigError(
        undefined,
        undefined,
        `the dynamic security plugin (${section.dynamicSecurityFile}) and ${section.passwordFile ? `password_file ${section.passwordFile}` : `acl_file ${section.aclFile}`} apply to the same listeners: mqprobe does not chain them as Mosquitto chains its checks; use one or the other (or per_listener_settings true with each on its own listener)`,
      );
  }
}
