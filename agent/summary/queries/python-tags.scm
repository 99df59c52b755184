; Python tags: definitions (classes, functions, methods, module/class-level names) and references.
(class_definition name: (identifier) @name.definition.class) @definition.class
(function_definition name: (identifier) @name.definition.function) @definition.function
(module (assignment left: (identifier) @name.definition.constant) @definition.constant)
(class_definition body: (block (assignment left: (identifier) @name.definition.field) @definition.field))

(call function: (identifier) @name.reference.call)
(attribute attribute: (identifier) @name.reference.attribute)
(import_from_statement name: (dotted_name (identifier) @name.reference.import))
(import_from_statement name: (aliased_import name: (dotted_name (identifier) @name.reference.import)))
(import_statement name: (dotted_name (identifier) @name.reference.import))
(import_statement name: (aliased_import name: (dotted_name (identifier) @name.reference.import)))
(import_from_statement module_name: (dotted_name (identifier) @name.reference.module))
(import_from_statement module_name: (relative_import (dotted_name (identifier) @name.reference.module)))
(argument_list (identifier) @name.reference.name)
(argument_list (keyword_argument value: (identifier) @name.reference.name))
(argument_list (keyword_argument name: (identifier) @name.reference.keyword))
(class_definition superclasses: (argument_list (attribute attribute: (identifier) @name.reference.class)))
(type (identifier) @name.reference.type)
(decorator (identifier) @name.reference.call)
(assignment right: (identifier) @name.reference.name)
(return_statement (identifier) @name.reference.name)
((string (string_content) @name.reference.string) (#match? @name.reference.string "^[A-Za-z_][A-Za-z0-9_]{2,63}$"))

; String keys that name a definition: `code = "E501"` in a class body, `@register("E501")` on a def.
; Code looked up by such a key (a rule found by its code name) is otherwise invisible to a graph of names.
((class_definition body: (block (assignment right: (string (string_content) @name.definition.key))))
  (#match? @name.definition.key "^[A-Za-z_][A-Za-z0-9_]{2,63}$"))
((decorator (call arguments: (argument_list (string (string_content) @name.definition.key))))
  (#match? @name.definition.key "^[A-Za-z_][A-Za-z0-9_]{2,63}$"))
