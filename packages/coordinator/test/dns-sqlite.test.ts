// DNS names against embedded SQLite.
import { dnsCases } from './dns-cases.js';

dnsCases(async () => ({}));
