// The probe's defects (issue 17) against embedded SQLite.
import { probeCases } from './probe-cases.js';

probeCases(async () => ({}));
