/**
 * Structural checks of the Kibana saved objects and ML jobs against a real mapping: Kibana and
 * ML cannot run here, so every field they use must at least exist with the mapping the cluster built.
 */
import { readFileSync } from 'node:fs';
import { INDEX_PATTERN, kibanaNdjsonPath, mlJobs } from '../../elastic/assets.js';

type Api = <T = Record<string, unknown>>(method: string, path: string, body?: unknown) => Promise<T>;

/** field path → mapping type, multi-fields included (`mqtt.payload.text`). */
export function fieldsOfMapping(mappings: Record<string, unknown>): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (props: Record<string, Record<string, unknown>> | undefined, prefix: string) => {
    for (const [name, def] of Object.entries(props ?? {})) {
      const path = prefix ? `${prefix}.${name}` : name;
      if (typeof def.type === 'string' && def.type !== 'object' && def.type !== 'nested') out.set(path, def.type);
      walk(def.properties as Record<string, Record<string, unknown>> | undefined, path);
      walk(def.fields as Record<string, Record<string, unknown>> | undefined, path);
    }
  };
  walk(mappings.properties as Record<string, Record<string, unknown>> | undefined, '');
  return out;
}

/** The mappings a new index of that name would get from the installed templates. */
export async function simulatedMapping(
  api: Api,
  index: string,
): Promise<{ mappings: Record<string, unknown>; settings: Record<string, unknown> }> {
  const r = await api<{ template: { mappings: Record<string, unknown>; settings: Record<string, unknown> } }>(
    'POST',
    `/_index_template/_simulate_index/${index}`,
  );
  return r.template;
}

interface SavedObject {
  type: string;
  id: string;
  attributes: Record<string, unknown>;
  references: { type: string; id: string; name: string }[];
}

/** Field names a KQL query uses (`field : value`). */
function kqlFields(query: string): string[] {
  return [...query.matchAll(/([A-Za-z_@][\w.@]*)\s*:/g)].map((m) => m[1]);
}

/** Every problem found in elastic/kibana/mqprobe.ndjson; empty when it is sound. */
export function checkSavedObjects(fields: Map<string, string>): string[] {
  const problems: string[] = [];
  const objects: SavedObject[] = [];
  readFileSync(kibanaNdjsonPath(), 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (!line.trim()) return;
      try {
        objects.push(JSON.parse(line) as SavedObject);
      } catch (e) {
        problems.push(`line ${i + 1} does not parse: ${(e as Error).message}`);
      }
    });
  const byKey = new Map(objects.map((o) => [`${o.type}:${o.id}`, o]));
  if (byKey.size !== objects.length) problems.push('duplicate type:id');
  const needField = (where: string, f: string) => {
    if (!fields.has(f)) problems.push(`${where}: field ${f} is not in the mapping`);
  };
  for (const o of objects) {
    for (const r of o.references)
      if (!byKey.has(`${r.type}:${r.id}`)) problems.push(`${o.type} ${o.id}: reference ${r.name} → ${r.type} ${r.id} does not resolve`);
    if (o.type === 'index-pattern') {
      if (o.attributes.title !== INDEX_PATTERN) problems.push(`data view title ${o.attributes.title} is not ${INDEX_PATTERN}`);
      needField('data view', o.attributes.timeFieldName as string);
    }
    if (o.type === 'lens') {
      const state = o.attributes.state as {
        datasourceStates: {
          formBased: { layers: Record<string, { columns: Record<string, { sourceField?: string }>; columnOrder: string[] }> };
        };
        query: { query: string };
        visualization: Record<string, unknown>;
      };
      for (const [layerId, layer] of Object.entries(state.datasourceStates.formBased.layers)) {
        if (!o.references.some((r) => r.name === `indexpattern-datasource-layer-${layerId}` && r.type === 'index-pattern')) {
          problems.push(`lens ${o.id}: layer ${layerId} has no data view reference`);
        }
        for (const [colId, col] of Object.entries(layer.columns)) {
          if (!layer.columnOrder.includes(colId)) problems.push(`lens ${o.id}: column ${colId} not in columnOrder`);
          if (col.sourceField && col.sourceField !== '___records___') needField(`lens ${o.id}`, col.sourceField);
        }
        const used =
          JSON.stringify(state.visualization).match(
            /"(?:xAccessor|splitAccessor|columnId|metricAccessor)":"([^"]+)"|"accessors":\["([^"]+)"/g,
          ) ?? [];
        for (const u of used) {
          const id = /"([^"]+)"\]?$/.exec(u)?.[1];
          if (id && !(id in layer.columns)) problems.push(`lens ${o.id}: visualization uses unknown column ${id}`);
        }
      }
      for (const f of kqlFields(state.query.query)) needField(`lens ${o.id} query`, f);
    }
    if (o.type === 'dashboard') {
      const panels = JSON.parse(o.attributes.panelsJSON as string) as { panelIndex: string; panelRefName: string }[];
      if (panels.length === 0) problems.push('dashboard has no panels');
      for (const p of panels) {
        if (!o.references.some((r) => r.name === `${p.panelIndex}:${p.panelRefName}`))
          problems.push(`dashboard panel ${p.panelIndex}: ${p.panelRefName} has no reference`);
      }
      JSON.parse(o.attributes.optionsJSON as string);
      JSON.parse((o.attributes.kibanaSavedObjectMeta as { searchSourceJSON: string }).searchSourceJSON);
    }
  }
  return problems;
}

/** job id → every field its detectors, influencers and datafeed query use. */
export function mlJobFields(): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const j of mlJobs()) {
    const used = new Set<string>();
    const ac = j.job.analysis_config as { detectors: Record<string, string>[]; influencers: string[] };
    for (const d of ac.detectors)
      for (const k of ['field_name', 'by_field_name', 'over_field_name', 'partition_field_name']) if (d[k]) used.add(d[k]);
    ac.influencers.forEach((f) => used.add(f));
    used.add((j.job.data_description as { time_field: string }).time_field);
    for (const m of JSON.stringify(j.datafeed.query).matchAll(/"(?:term|terms)":\{"([^"]+)"/g)) used.add(m[1]);
    out.set(j.job_id, used);
  }
  return out;
}
